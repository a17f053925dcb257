package incident

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// The in-memory state of a key is a cache of two shared truths: the
// status page (is the incident still open?) and one KeyStore entry per key that says
// which incident is the bridge's, or that one is being opened, with the run count, the
// last failure and the reports applied to it. The texts on the status page carry no
// marker: the entry is how the bridge knows its incidents, also after a restart (Start
// lists the store's keys). Every report first reads the entry (sync); when another
// replica (or an earlier run of this one) changed it since this replica last looked, the
// key's incident is read again (GET incident) and the rest taken from the entry.
// Opening an incident needs the key's claim (Create;
// a second replica gets ErrKeyExists and either updates the incident named in the entry,
// or meets the claim: it looks on the page for the incident the claim describes and
// adopts it if it is there; if not, it asks for the report again while the claim's hold
// lasts (ErrKeyBusy, Until = ClaimTimeout after the claim) and takes the claim over after
// it. The holder's requests end within half the hold (holdCtx), so a write not on the
// page after the hold never lands: no second incident, and no waiting on a dead replica
// whose incident is there. Every write names the
// revision it expects; a mismatch means "read again and decide again".
//
// Entry life cycle: claim {incident:""} -> POST /incidents -> {incident:id} -> (each
// update: {updating: pending} -> POST .../updates -> rewritten without it, so that the
// others notice) -> {closing} -> closing update + PATCH (resolve) -> Delete. An incident ended
// by a person keeps its entry until a success or the quiet period: the entry is the
// replicas' shared "do not reopen".

// maxStoreRounds bounds read-decide-write rounds under contention.
const maxStoreRounds = 8

func replicaID(id string) string {
	if id != "" {
		return sanitizeBridgeID(id)
	}
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return sanitizeBridgeID(host) + "-" + hex.EncodeToString(b[:])
}

// sync reads the key's entry and brings the key's state in line with it.
func (a *apply) sync(ctx context.Context) error {
	ks, m := a.ks, a.s.m
	for range maxStoreRounds {
		raw, rev, err := m.kv.Get(ctx, ks.hash)
		switch {
		case errors.Is(err, kvstore.ErrNoKey):
			again, err := a.syncAbsent(ctx)
			if err != nil || !again {
				return err
			}
			continue
		case err != nil:
			return storeError("get", err)
		case rev == ks.kvRev:
			if ks.kvClaim && ks.inc != nil {
				a.publish(ctx) // the id did not reach the store after the open
			}
			return nil
		}
		again, err := a.syncEntry(ctx, raw, rev)
		if err != nil || !again {
			return err
		}
	}
	return storeError("sync", errors.New("the entry kept changing"))
}

// syncAbsent: no replica claims the key. An incident this replica still holds was
// resolved by another replica, or its entry was lost; a suppression was lifted by a
// success elsewhere (the entry of a hand-ended incident lives until then).
func (a *apply) syncAbsent(ctx context.Context) (again bool, err error) {
	ks, m := a.ks, a.s.m
	ks.kvRev, ks.kvClaim = 0, false
	if ks.inc == nil {
		if ks.suppressed {
			a.log.Info().Msg("another replica lifted the hand-end suppression")
			ks.suppressed = false
		}
		return false, nil
	}
	if _, still, _, err := a.checkOpen(ctx); err != nil || !still {
		ks.successStreak = 0
		return false, err
	}
	// Still open and unknown to the store (lost entry): publish it again.
	rev, err := m.kv.Create(ctx, ks.hash, a.openEntry().encode())
	switch {
	case errors.Is(err, kvstore.ErrKeyExists):
		return true, nil
	case err != nil:
		return false, storeError("create", err)
	}
	ks.kvRev = rev
	return false, nil
}

// syncEntry follows an entry written by someone else (or not yet seen by this replica).
func (a *apply) syncEntry(ctx context.Context, raw []byte, rev uint64) (again bool, err error) {
	ks, m := a.ks, a.s.m
	e, derr := decodeEntry(raw)
	if derr != nil {
		a.log.Warn().Err(derr).Msg("unreadable key store entry; treated as an abandoned claim")
		e = entry{}
	}
	if ks.inc != nil && ks.inc.id != e.Incident {
		// The key moved on without this replica: its incident was resolved elsewhere.
		ks.setIncident(m, nil)
		ks.successStreak = 0
	}
	if e.Incident == "" {
		return a.syncClaim(ctx, e, rev)
	}
	cur, err := m.client.GetIncident(ctx, e.Incident)
	deleted := statuspage.StatusOf(err) == http.StatusNotFound
	if err != nil && !deleted {
		return false, err
	}
	if !deleted && cur.EndedAt == nil {
		if e.Closing && e.Owner != m.owner && m.now().Before(e.until()) {
			// Another replica is resolving it and may be sending the closing update or the
			// PATCH right now. (An incident found ended is its resolve done: cleaned up below.)
			return false, &temporaryError{op: "claim", err: fmt.Errorf("%w: by %s", ErrKeyResolving, e.Owner)}
		}
		var landed bool
		if e.Updating != nil {
			if landed, err = a.pendingLanded(ctx, e); err != nil {
				return false, err
			}
		}
		a.adoptEntry(e, cur)
		ks.kvRev, ks.kvClaim, ks.pendingCreate, ks.pendingOpen = rev, false, false, nil
		if e.Updating != nil {
			a.settlePending(e.Updating, landed)
			a.publish(ctx) // the entry without the mark, with the update counted if it landed
		}
		return false, nil
	}
	byBridge := !deleted && (e.Closing || endedByBridge(ks, cur))
	if ks.inc != nil {
		ks.setIncident(m, nil)
		ks.successStreak = 0
	}
	if byBridge {
		// Ended by a replica whose Delete did not get through: remove the leftover.
		if err := m.kv.Delete(ctx, ks.hash, rev); err != nil && !errors.Is(err, kvstore.ErrRevisionMismatch) {
			return false, storeError("delete", err)
		}
		ks.kvRev, ks.kvClaim = 0, false
		return true, nil
	}
	// Ended or deleted by a person: every replica holds back until a success.
	if !ks.suppressed {
		ks.suppressed = true
		if cur.EndedAt != nil {
			ks.lastFailure = later(ks.lastFailure, *cur.EndedAt)
		}
		a.log.Info().Str("incident", e.Incident).Msg("incident of this key was ended by a person; not reopening until a success")
	}
	ks.kvRev, ks.kvClaim = rev, false
	return false, nil
}

// syncClaim follows a claim: someone is opening the key's incident.
func (a *apply) syncClaim(ctx context.Context, e entry, rev uint64) (again bool, err error) {
	ks, m := a.ks, a.s.m
	if e.Owner == m.owner {
		// This replica's own claim, whose write answer was lost or which an earlier run
		// of this pod left: its POST may have gone through, so look before opening.
		ks.kvRev, ks.kvClaim = rev, true
		if ks.inc != nil {
			a.publish(ctx)
		} else {
			ks.pendingCreate, ks.pendingOpen = true, e.Opening
		}
		return false, nil
	}
	// Someone else's claim. Look at the page first: the incident the claim describes may
	// be there already (the owner died, or lost the answer, between its POST and writing
	// the id). The time is taken before the look: a claim expired then can no longer get
	// its incident onto the page after the look (the owner's POST ran with a deadline
	// within the hold, holdCtx), so not finding it means it never comes.
	expired := !m.now().Before(e.until())
	if e.Opening != nil {
		incs, err := m.listIncidents(ctx)
		if err != nil {
			return false, err
		}
		var found []statuspage.Incident
		for _, inc := range incs {
			if inc.ID != "" && e.Opening.matches(inc.DisplayName, inc.BeganAt, inc.EndedAt) {
				found = append(found, inc)
			}
		}
		if len(found) > 0 {
			return a.adoptClaimed(ctx, e, rev, found)
		}
	}
	if !expired {
		// The owner may be in the middle of its POST: ask again in a moment.
		return false, &temporaryError{op: "claim", err: fmt.Errorf("%w: %s is opening it", ErrKeyBusy, e.Owner)}
	}
	// Abandoned, and its incident not on the page: this replica opens the key's incident.
	nrev, err := m.kv.Update(ctx, ks.hash, a.claimEntry(nil).encode(), rev)
	switch {
	case errors.Is(err, kvstore.ErrRevisionMismatch):
		return true, nil
	case err != nil:
		return false, storeError("update", err)
	}
	a.log.Warn().Str("owner", e.Owner).Time("since", e.Since).Msg("took over an abandoned claim whose incident is not on the page")
	ks.kvRev, ks.kvClaim, ks.pendingCreate, ks.pendingOpen = nrev, true, false, nil
	return false, nil
}

// adoptClaimed takes the incident another replica's claim opened (found on the page by
// the claim's fingerprint) as the key's incident, writing its id into the entry in place
// of the claim (compare-and-set: a mismatch means the owner wrote it meanwhile; read
// again). The claim's report counts as applied: it opened the incident.
func (a *apply) adoptClaimed(ctx context.Context, e entry, rev uint64, found []statuspage.Incident) (again bool, err error) {
	ks, m := a.ks, a.s.m
	a.s.adopt(ks, found)
	if ks.inc == nil {
		return false, fmt.Errorf("statuspage: adopt the incident of %s's claim: none of the matches is open", e.Owner)
	}
	ks.applied.add(e.Opening.Report)
	ks.failStreak = 0
	nrev, err := m.kv.Update(ctx, ks.hash, a.openEntry().encode(), rev)
	switch {
	case errors.Is(err, kvstore.ErrRevisionMismatch):
		ks.setIncident(m, nil)
		return true, nil
	case err != nil:
		ks.setIncident(m, nil)
		return false, storeError("update", err)
	}
	a.log.Info().Str("owner", e.Owner).Str("incident", ks.inc.id).Msg("adopted the incident of another replica's claim")
	ks.kvRev, ks.kvClaim, ks.pendingCreate, ks.pendingOpen = nrev, false, false, nil
	return false, nil
}

// pendingLanded looks on the page for the update an entry says its owner is posting
// (Updating). Not there while the owner's hold lasts: the owner may be posting it right
// now, so the report waits (ErrKeyBusy); a restarted owner (the same replica id) does not
// wait for itself. The time is taken before the look, as for a claim: after the hold
// nothing the owner sent can still land, so "not there" then means "never".
func (a *apply) pendingLanded(ctx context.Context, e entry) (bool, error) {
	m := a.s.m
	expired := !m.now().Before(e.until())
	us, err := m.client.ListUpdates(ctx, e.Incident)
	if err != nil {
		return false, err
	}
	for _, u := range us {
		if u.DisplayName == e.Updating.Name && sameSecond(e.Updating.At, u.CreatedAt) {
			return true, nil
		}
	}
	if !expired && e.Owner != m.owner {
		return false, &temporaryError{op: "update", err: fmt.Errorf("%w: %s is updating it", ErrKeyBusy, e.Owner)}
	}
	return false, nil
}

// settlePending counts an update found on the page (pendingLanded) into the key's
// incident, as its poster would have after the answer: one more run, its report applied.
// One not found is forgotten: its report, when it comes again, posts it.
func (a *apply) settlePending(p *pendingUpdate, landed bool) {
	ks, m := a.ks, a.s.m
	if !landed {
		a.log.Info().Str("incident", ks.inc.id).Str("update", p.Name).Msg("pending update of the key is not on the page; dropped")
		return
	}
	if ks.applied.has(p.Report) {
		return // counted already (the entry was written after it)
	}
	ks.inc.runs++
	ks.inc.closingPosted = false
	ks.lastFailure = later(ks.lastFailure, p.At)
	switch {
	case a.ev != nil && a.rh == p.Report:
		ks.lastEvent = slim(a.ev)
		m.obs.IncidentUpdated(a.s.name)
	case ks.lastEvent != nil && p.At.After(ks.lastEvent.Timestamp):
		ks.lastEvent = nil // what that failure was is unknown here
	}
	ks.applied.add(p.Report)
	a.log.Info().Str("incident", ks.inc.id).Int("runs", ks.inc.runs).Str("update", p.Name).Msg("pending update of the key found on the page; counted")
}

// markUpdate records in the key's entry (compare-and-set) the update this replica is
// about to post, so that whoever handles the key next looks for it on the page before
// posting (the answer to the POST may be lost, or this replica may stop before writing
// the entry after it).
func (a *apply) markUpdate(ctx context.Context, p *pendingUpdate) error {
	return a.hold(ctx, "update", func(e *entry) { e.Updating = p })
}

// hold writes the key's entry as read, marked by mark and held by this replica until
// ClaimTimeout from now, with compare-and-set: another replica that changed the entry
// meanwhile makes it ErrKeyBusy (read again and decide again). op names the step in errors.
func (a *apply) hold(ctx context.Context, op string, mark func(*entry)) error {
	ks, m := a.ks, a.s.m
	if ks.kvRev == 0 {
		return &temporaryError{op: op, err: errors.New("key store entry not read yet")}
	}
	e := a.openEntry()
	mark(&e)
	e.Until = e.Since.Add(m.claimTTL)
	rev, err := m.kv.Update(ctx, ks.hash, e.encode(), ks.kvRev)
	switch {
	case errors.Is(err, kvstore.ErrRevisionMismatch):
		ks.kvRev, ks.kvClaim = 0, false // read again with the next attempt
		return &temporaryError{op: op, err: fmt.Errorf("%w: its entry changed meanwhile", ErrKeyBusy)}
	case err != nil:
		return storeError("update", err)
	}
	ks.kvRev, ks.kvClaim = rev, false
	return nil
}

// claimEntry is this replica's claim to open the key's incident (fp: what it sends),
// held until ClaimTimeout from now.
func (a *apply) claimEntry(fp *fingerprint) entry {
	m := a.s.m
	now := m.now()
	return entry{Owner: m.owner, Since: now, Until: now.Add(m.claimTTL), Route: a.s.name, Opening: fp}
}

// holdCtx bounds the status page requests a replica sends under a hold it wrote at start
// (the wall clock, taken just before the entry was written) to half of ClaimTimeout, so
// that none of them can land after the hold ended and another replica took over.
func (a *apply) holdCtx(ctx context.Context, start time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, start.Add(a.s.m.claimTTL/2))
}

// claim makes this replica the opener of the key's incident, recording what it is about
// to create (fp). ok=false: the entry names an incident, now adopted (update it) or ended
// by a person (suppressed).
func (a *apply) claim(ctx context.Context, fp *fingerprint) (ok bool, err error) {
	ks, m := a.ks, a.s.m
	claim := a.claimEntry(fp)
	if ks.kvClaim {
		// Already this replica's claim (taken over, or left by an earlier attempt whose
		// incident was not found): record this create before it is sent.
		rev, err := m.kv.Update(ctx, ks.hash, claim.encode(), ks.kvRev)
		switch {
		case errors.Is(err, kvstore.ErrRevisionMismatch):
			ks.kvRev, ks.kvClaim = 0, false
			return false, &temporaryError{op: "claim", err: fmt.Errorf("%w: its entry changed meanwhile", ErrKeyBusy)}
		case err != nil:
			return false, storeError("update", err)
		}
		ks.kvRev = rev
		return true, nil
	}
	for range maxStoreRounds {
		rev, err := m.kv.Create(ctx, ks.hash, claim.encode())
		if err == nil {
			ks.kvRev, ks.kvClaim = rev, true
			return true, nil
		}
		if !errors.Is(err, kvstore.ErrKeyExists) {
			return false, storeError("create", err)
		}
		raw, rev, err := m.kv.Get(ctx, ks.hash)
		if errors.Is(err, kvstore.ErrNoKey) {
			continue
		}
		if err != nil {
			return false, storeError("get", err)
		}
		again, err := a.syncEntry(ctx, raw, rev)
		if err != nil {
			return false, err
		}
		if !again {
			return ks.kvClaim, nil
		}
	}
	return false, storeError("claim", errors.New("the entry kept changing"))
}

func (a *apply) openEntry() entry {
	ks := a.ks
	return entry{Incident: ks.inc.id, Owner: a.s.m.owner, Since: a.s.m.now(), Route: a.s.name, Runs: ks.inc.runs,
		Began: ks.inc.began, LastFailure: ks.lastFailure, Applied: ks.applied.list(appliedShared)}
}

// adoptEntry takes the open incident an entry names as the key's incident, with the run
// count, last failure and applied reports the entry keeps.
func (a *apply) adoptEntry(e entry, cur statuspage.Incident) {
	ks, m := a.ks, a.s.m
	inc := ks.inc
	if inc == nil || inc.id != e.Incident {
		inc = &openIncident{id: e.Incident}
	}
	inc.began = e.Began
	if inc.began.IsZero() {
		inc.began = began(cur)
	}
	inc.runs = max(e.Runs, 1)
	if e.Closing && !inc.closingPosted {
		// A resolve was under way: its closing update may be posted already.
		inc.verifyUpdates = true
	}
	ks.setIncident(m, inc)
	for _, r := range e.Applied {
		ks.applied.add(r)
	}
	if ks.lastEvent != nil && e.LastFailure.After(ks.lastEvent.Timestamp) {
		ks.lastEvent = nil // another replica applied a newer failure: what it was is unknown
	}
	ks.lastFailure = later(ks.lastFailure, later(e.LastFailure, inc.began))
	ks.suppressed = false
}

// publish writes the key's open incident into its entry: after the open (so that the
// others update it instead of waiting) and after every update (so that the others see
// the revision change and re-read the run count and the applied reports). A failure is
// only logged: the report is applied, and the next report of this key writes again.
func (a *apply) publish(ctx context.Context) {
	ks, m := a.ks, a.s.m
	if ks.inc == nil || ks.kvRev == 0 {
		return
	}
	rev, err := m.kv.Update(ctx, ks.hash, a.openEntry().encode(), ks.kvRev)
	switch {
	case err == nil:
		ks.kvRev, ks.kvClaim = rev, false
	case errors.Is(err, kvstore.ErrRevisionMismatch):
		if ks.kvClaim {
			// Another replica found this incident on the page by the claim's fingerprint
			// and adopted it into the entry: read again with the next report.
			a.log.Info().Str("incident", ks.inc.id).Msg("another replica adopted the incident of this replica's claim")
		}
		ks.kvRev, ks.kvClaim = 0, false // the next report reads the entry again
	default:
		a.log.Warn().Err(err).Str("incident", ks.inc.id).Msg("key store write failed; retried with the next report of this key")
	}
}

// release deletes the key's entry when it no longer stands for anything: no open
// incident, no ambiguous create, and not the shared flag of a hand-ended incident.
// A failure is only logged: a leftover entry is removed by the next replica reading it.
func (a *apply) release(ctx context.Context) {
	ks, m := a.ks, a.s.m
	if ks.inc != nil || ks.kvRev == 0 || ks.pendingCreate || (ks.suppressed && !ks.kvClaim) {
		return
	}
	err := m.kv.Delete(ctx, ks.hash, ks.kvRev)
	if err != nil && !errors.Is(err, kvstore.ErrRevisionMismatch) {
		a.log.Warn().Err(err).Msg("key store delete failed; the leftover entry is cleaned up later")
		return
	}
	ks.kvRev, ks.kvClaim = 0, false
}

// fence makes this replica the one that resolves the key's incident: a compare-and-set
// of the entry it read, marked closing. Two replicas resolving at once (a success on one,
// the quiet period on the other) would otherwise both post a closing update.
func (a *apply) fence(ctx context.Context) error {
	return a.hold(ctx, "resolve", func(e *entry) { e.Closing = true })
}
