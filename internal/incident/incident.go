package incident

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Sink is the status page sink of one route.
type Sink struct {
	m      *Manager
	name   string
	cfg    RouteConfig
	log    zerolog.Logger
	target atomic.Pointer[target] // ids of the route's names; set by Start and refreshes

	unknown unknownComponents // derived components the page lacks (component.go)
}

// Name returns the route name.
func (s *Sink) Name() string { return s.name }

// Send applies one report: open, update or resolve the incident of the report's key. It
// may be called concurrently, also for the same key: work on one key is serialised. A
// report already applied changes nothing. retry=true means "not applied, call again later
// with the same event"; retry=false with an error means it will never apply. Reports that
// are not final, or neutral, are ignored.
//
// API calls: open = POST /incidents; update = POST .../updates; resolve = GET
// /incidents/{id} (so that a person's endedAt is never overwritten) + POST .../updates
// (closing) + PATCH /incidents/{id}; counted-only, suppressed and duplicate reports = 0.
// Maintenance and incidents ended by hand are known from the background incident list
// (RefreshIncidents, live.go), at most one refresh interval old. Extra reads happen only
// after a lost answer or an error (looking before writing again).
//
// Every report first reads the key's entry (1 KV get); an
// open claims the key first and stores the id after (2 KV writes), an update records
// itself as pending before its POST and counted after (2 KV writes), a resolve writes it
// once (the closing mark) and deletes it; when another replica changed the entry
// since this one looked, the incident is read again (GET incident). A key
// another replica is opening or resolving, and an unreachable store, give retry=true; the
// first with an error wrapping ErrKeyBusy (or ErrKeyResolving), which is over within
// seconds, so the caller may ask again soon.
func (s *Sink) Send(ctx context.Context, ev *zuul.Event) (retry bool, err error) {
	if ev == nil || (ev.Outcome != zuul.OutcomeFailure && ev.Outcome != zuul.OutcomeSuccess) {
		return false, nil
	}
	if !s.m.started.Load() {
		// Reports can arrive before Start found the open incidents; they must wait.
		return true, &temporaryError{op: "send", err: errors.New("manager not started yet")}
	}
	hash, vals := keyOf(s.name, s.cfg.Key, ev)
	ks := s.m.state(hash, s)
	if err := ks.mu.lock(ctx); err != nil {
		return true, err
	}
	defer ks.mu.unlock()
	rh := reportHash(ev.ID)
	log := s.log.With().Str("incident_key", hash).Str("report", ev.ID).Logger()
	a := &apply{s: s, ks: ks, ev: ev, rh: rh, vals: vals, log: log}
	// Another replica may have opened, updated or resolved this key's incident.
	if err := a.sync(ctx); err != nil {
		retry = statuspage.Retryable(err)
		log.Warn().Err(err).Bool("retry", retry).Msg("status page delivery failed")
		return retry, err
	}
	if a.applied() {
		log.Debug().Msg("report already applied")
		return false, nil
	}
	if ev.Outcome == zuul.OutcomeFailure {
		err = a.failure(ctx)
	} else {
		err = a.success(ctx)
	}
	a.release(ctx)
	if err != nil {
		retry = statuspage.Retryable(err)
		log.Warn().Err(err).Bool("retry", retry).Msg("status page delivery failed")
		return retry, err
	}
	ks.applied.add(rh)
	return false, nil
}

// apply is one report being applied to one key (whose lock is held).
type apply struct {
	s    *Sink
	ks   *keyState
	ev   *zuul.Event
	rh   string
	vals map[string]string
	log  zerolog.Logger
}

// applied: this report changed the status page already.
func (a *apply) applied() bool { return a.ks.applied.has(a.rh) }

func (a *apply) target() (*target, error) {
	t := a.s.target.Load()
	if t == nil {
		return nil, fmt.Errorf("statuspage: route %s: names not resolved", a.s.name)
	}
	return t, nil
}

func (a *apply) when() time.Time {
	if a.ev == nil || a.ev.Timestamp.IsZero() {
		return a.s.m.now()
	}
	return a.ev.Timestamp
}

func (a *apply) failure(ctx context.Context) error {
	ks, m := a.ks, a.s.m
	ts := a.when()
	if ks.suppressed {
		ks.lastFailure = later(ks.lastFailure, ts)
		m.obs.Suppressed(a.s.name, "hand-ended")
		a.log.Info().Msg("incident of this outage was ended by a person; not reopening until a success")
		return nil
	}
	ks.successStreak = 0
	if ks.inc == nil && ks.pendingCreate {
		if err := a.s.findOpen(ctx, ks); err != nil {
			return err
		}
		if ks.inc != nil && ks.kvClaim {
			a.publish(ctx)
		}
		if a.applied() { // the ambiguous create was this very report
			m.obs.IncidentOpened(a.s.name)
			return nil
		}
	}
	if ks.inc != nil {
		return a.update(ctx)
	}
	streak := ks.failStreak + 1
	if streak < a.s.cfg.OpenAfter {
		ks.failStreak = streak
		a.log.Info().Int("failures", streak).Int("open_after", a.s.cfg.OpenAfter).Msg("failure counted, no incident yet")
		return nil
	}
	return a.open(ctx, streak)
}

func (a *apply) open(ctx context.Context, streak int) error {
	ks, m := a.ks, a.s.m
	t, err := a.target()
	if err != nil {
		return err
	}
	componentID, _, err := a.s.eventComponent(a.ev)
	if err != nil {
		return err
	}
	if id, ok := m.live.Load().underMaintenance(componentID, m.now()); ok {
		ks.failStreak = streak // opens at once when the maintenance is over
		m.obs.Suppressed(a.s.name, "maintenance")
		a.log.Info().Str("maintenance", id).Msg("component under maintenance; no incident opened")
		return nil
	}
	ts := a.when()
	title, desc, err := a.openTexts(ts)
	if err != nil {
		return err
	}
	fp := &fingerprint{Title: title, Began: ts, Report: a.rh}
	start := time.Now()
	claimed, err := a.claim(ctx, fp)
	switch {
	case err != nil:
		return err
	case !claimed && ks.inc != nil: // another replica opened it meanwhile
		return a.update(ctx)
	case !claimed: // ended by a person: suppressed
		return a.failure(ctx)
	case ks.pendingCreate: // took over an abandoned claim: look for its incident
		return a.failure(ctx)
	}
	sev := t.severity
	// Within the claim's hold, so that another replica can rely on its deadline.
	hctx, cancel := a.holdCtx(ctx, start)
	defer cancel()
	id, err := m.client.CreateIncident(hctx, statuspage.NewIncident{
		DisplayName: title,
		Description: desc,
		BeganAt:     ts,
		Phase:       t.open,
		Affects:     []statuspage.Impact{{Reference: componentID, Type: t.impactTypeID, Severity: &sev}},
	})
	if err != nil {
		if statuspage.MaybeApplied(err) {
			ks.pendingCreate, ks.pendingOpen = true, fp
		}
		return err
	}
	ks.setIncident(m, &openIncident{id: id, began: ts, runs: 1})
	ks.pendingOpen = nil
	ks.failStreak = 0
	ks.lastFailure = later(ks.lastFailure, ts)
	ks.lastEvent = slim(a.ev)
	ks.applied.add(a.rh)
	a.publish(ctx)
	m.obs.IncidentOpened(a.s.name)
	a.log.Info().Str("incident", id).Msg("incident opened")
	return nil
}

// checkOpen reads the incident before the bridge ends it, or after an update post failed.
// It returns false (and clears the key's incident) when the incident is gone or ended: by
// a person, or by the bridge's own closing PATCH whose answer was lost.
func (a *apply) checkOpen(ctx context.Context) (cur statuspage.Incident, still bool, byUs bool, err error) {
	ks, m := a.ks, a.s.m
	cur, err = m.client.GetIncident(ctx, ks.inc.id)
	if statuspage.StatusOf(err) == http.StatusNotFound {
		a.log.Info().Str("incident", ks.inc.id).Msg("incident was deleted")
		ks.setIncident(m, nil)
		return cur, false, false, nil
	}
	if err != nil {
		return cur, false, false, err
	}
	if cur.EndedAt == nil {
		return cur, true, false, nil
	}
	byUs = endedByBridge(ks, cur)
	a.log.Info().Str("incident", ks.inc.id).Bool("by_bridge", byUs).Msg("incident was already ended")
	ks.setIncident(m, nil)
	return cur, false, byUs, nil
}

// update posts one incident update without reading first: an incident ended by hand is
// noticed by RefreshIncidents (an update to it in between is harmless, live.go). Only a
// failed post reads the incident, to tell a deleted or ended incident (the server answers
// 500 to an update of an unknown incident) from a transient error.
func (a *apply) update(ctx context.Context) error {
	ks, m := a.ks, a.s.m
	inc := ks.inc
	ts := a.when()
	name, body, err := a.updateTexts(inc.runs+1, inc.began, ts)
	if err != nil {
		return err
	}
	if inc.verifyUpdates {
		if found, err := a.findUpdate(ctx, false, name); err != nil || found {
			if found {
				ks.applied.add(a.rh)
				a.publish(ctx)
			}
			return err
		}
	}
	// The update is recorded as pending before it is sent, and sent within the hold.
	start := time.Now()
	if err := a.markUpdate(ctx, &pendingUpdate{Name: name, At: ts, Report: a.rh}); err != nil {
		return err
	}
	hctx, cancel := a.holdCtx(ctx, start)
	defer cancel()
	if _, err := m.client.PostUpdate(hctx, inc.id, statuspage.IncidentUpdate{DisplayName: name, Description: body, CreatedAt: &ts}); err != nil {
		if statuspage.MaybeApplied(err) {
			inc.verifyUpdates = true
		}
		if statuspage.StatusOf(err) == http.StatusInternalServerError {
			return a.updateFailed(ctx, err)
		}
		return err
	}
	a.updated(ts)
	ks.applied.add(a.rh)
	a.publish(ctx)
	return nil
}

// updateFailed looks at the incident after a 500 to an update post: gone or ended means
// the outage's incident was taken over by a person (or our lost resolve went through);
// otherwise the 500 was the numbering collision and the post is retried.
func (a *apply) updateFailed(ctx context.Context, postErr error) error {
	ks, m := a.ks, a.s.m
	_, still, byUs, err := a.checkOpen(ctx)
	if err != nil || still {
		return postErr
	}
	if byUs { // our resolve went through after all; this failure is a new outage
		m.obs.IncidentResolved(a.s.name)
		return a.failure(ctx)
	}
	ks.suppressed = true
	ks.lastFailure = later(ks.lastFailure, a.when())
	m.obs.Suppressed(a.s.name, "hand-ended")
	return nil
}

func (a *apply) updated(ts time.Time) {
	ks := a.ks
	ks.inc.runs++
	ks.inc.closingPosted = false
	ks.inc.verifyUpdates = false
	ks.lastFailure = later(ks.lastFailure, ts)
	ks.lastEvent = slim(a.ev)
	a.s.m.obs.IncidentUpdated(a.s.name)
	a.log.Info().Str("incident", ks.inc.id).Int("runs", ks.inc.runs).Msg("incident updated")
}

// findUpdate looks for this report's update after a post whose answer was lost: an
// update with the display name it would have, created at the report's time (a failure),
// or after the last failure (the closing update, whose time a quiet period sets anew
// with every attempt).
func (a *apply) findUpdate(ctx context.Context, closing bool, name string) (bool, error) {
	ks := a.ks
	us, err := a.s.m.client.ListUpdates(ctx, ks.inc.id)
	if err != nil {
		return false, err
	}
	ks.inc.verifyUpdates = false
	for _, u := range us {
		var match bool
		if closing {
			match = u.DisplayName == name && (u.CreatedAt == nil || u.CreatedAt.Unix() >= ks.lastFailure.Unix())
		} else {
			match = u.DisplayName == name && sameSecond(a.when(), u.CreatedAt)
		}
		if match {
			if closing {
				ks.inc.closingPosted = true
			} else {
				a.updated(a.when())
			}
			return true, nil
		}
	}
	return false, nil
}

// data is what the templates see; at is the time the text speaks of (the report's, or
// the end of the incident for the closing update).
func (a *apply) data(run int, since time.Time, reason string, at time.Time) *TemplateData {
	ev := a.ev
	if ev == nil {
		ev = &zuul.Event{}
	}
	res, _ := ev.Field("result")
	d := &TemplateData{Event: ev, Route: a.s.name, Key: a.vals, Result: res, Failed: votingFailures(ev),
		FailedBuilds: ev.FailedBuilds(), Run: run, At: at.UTC(), Since: since.UTC(), Reason: reason,
		QuietPeriod: a.s.cfg.QuietPeriod, Job: ev.Job, Component: a.s.componentLabel(ev)}
	if run > 1 && a.ks != nil {
		d.Previous = a.ks.lastEvent
	}
	return d
}

// endedByBridge reports whether an ended incident of ks was ended by the closing PATCH
// this process sent (answered or not). A restarted bridge knows it from the entry's
// Closing flag (replicas.go).
func endedByBridge(ks *keyState, cur statuspage.Incident) bool {
	return ks.inc != nil && ks.inc.endSent != nil && sameSecond(*ks.inc.endSent, cur.EndedAt)
}

// KeyOf is the incident key a report of this route belongs to: reports of one key are
// applied in order, reports of different keys independently (the outbox's lanes).
func (s *Sink) KeyOf(ev *zuul.Event) string {
	h, _ := keyOf(s.name, s.cfg.Key, ev)
	return h
}
