package incident

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// clockSkew extends the end of the incident list window: open incidents are listed only
// if beganAt <= end, and beganAt is Zuul's report time, which may run ahead of our clock.
const clockSkew = 24 * time.Hour

// recover rebuilds the state of every key before the first report is handled. With a
// key store, from the store: one GET /incidents (the maintenance view), then per key
// entry one KV get and, for an entry naming an incident, one GET /incidents/{id}
// (replicas.go, sync). Without, from the status page: one GET /incidents (every open
// incident, plus the ended ones of the last 30 days) and one GET .../updates per open
// incident of the bridge, recognised by the reference sentence in its texts.
func (m *Manager) recover(ctx context.Context) error {
	incs, err := m.listIncidents(ctx)
	if err != nil {
		return err
	}
	if m.kv != nil {
		if err := m.recoverFromStore(ctx); err != nil {
			return err
		}
		return m.adoptLegacy(ctx, incs)
	}
	if err := m.adoptLegacy(ctx, incs); err != nil {
		return err
	}
	for ref, list := range m.ownIncidents(incs) {
		s := m.routeOfRef(ref)
		if s == nil {
			if hasOpen(list) {
				m.log.Warn().Str("ref", ref).Str("incident", list[0].ID).
					Msg("open incident of a route that is no longer configured; left alone")
			}
			continue
		}
		ks := m.state(ref, "", s)
		if err := ks.mu.lock(ctx); err != nil {
			return err
		}
		err := s.adopt(ctx, ks, list, true)
		ks.mu.unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// recoverFromStore reads every entry of the key store (if it can list its keys) and
// brings each key's state in line with it, as a report of the key would.
func (m *Manager) recoverFromStore(ctx context.Context) error {
	lister, ok := m.kv.(KeyLister)
	if !ok {
		return nil
	}
	keys, err := lister.Keys(ctx)
	if err != nil {
		return storeError("list", err)
	}
	for _, hash := range keys {
		raw, _, err := m.kv.Get(ctx, hash)
		if err != nil {
			continue // gone meanwhile, or unreadable: the key's next report reads it again
		}
		e, err := decodeEntry(raw)
		m.mu.Lock()
		s := m.routes[e.Route]
		m.mu.Unlock()
		if err != nil || s == nil {
			m.log.Warn().Str("key", hash).Str("route", e.Route).Msg("key store entry of no configured route; left alone")
			continue
		}
		ks := m.state(m.ref(s.name, hash), hash, s)
		if err := ks.mu.lock(ctx); err != nil {
			return err
		}
		a := &apply{s: s, ks: ks, log: s.log.With().Str("incident_key", ks.ref).Logger()}
		err = a.sync(ctx)
		if ks.inc != nil {
			// An update posted just before the stop may be missing from the entry: the
			// key's first update looks for its own (one GET) before posting.
			ks.inc.verifyUpdates = true
		}
		ks.mu.unlock()
		if errors.Is(err, errKeyBusy) || errors.Is(err, errKeyResolving) {
			// Another replica is opening or resolving it right now: the key's next
			// report (or quiet-period check) reads the entry again.
			a.log.Info().Err(err).Msg("key busy at start; read again with its next report")
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ownIncidents groups the incidents carrying a reference sentence of this bridge's routes
// by reference.
func (m *Manager) ownIncidents(incs []statuspage.Incident) map[string][]statuspage.Incident {
	byRef := map[string][]statuspage.Incident{}
	for _, inc := range incs {
		ref, kind, ok := parseRef(inc.Description)
		if !ok || kind == refClosing || inc.ID == "" {
			continue
		}
		byRef[ref] = append(byRef[ref], inc)
	}
	return byRef
}

// routeOfRef finds the route whose tag begins ref; nil when none or several do.
func (m *Manager) routeOfRef(ref string) *Sink {
	m.mu.Lock()
	defer m.mu.Unlock()
	var found *Sink
	for _, s := range m.order {
		if strings.HasPrefix(ref, routeTag(m.bridgeID, s.name)) {
			if found != nil {
				return nil
			}
			found = s
		}
	}
	return found
}

func hasOpen(list []statuspage.Incident) bool {
	for _, inc := range list {
		if inc.EndedAt == nil {
			return true
		}
	}
	return false
}

// findOpen looks for the incident that a create with an unseen answer may have stored
// (by the display name and beganAt it sent) and adopts it. Only called after such an
// ambiguous failure (not on the hot path).
func (s *Sink) findOpen(ctx context.Context, ks *keyState) error {
	incs, err := s.m.listIncidents(ctx)
	if err != nil {
		return err
	}
	var found []statuspage.Incident
	for _, inc := range incs {
		if inc.ID != "" && ks.pendingOpen.matches(inc.DisplayName, inc.BeganAt, inc.EndedAt) {
			found = append(found, inc)
		}
	}
	if err := s.adopt(ctx, ks, found, false); err != nil {
		return err
	}
	if len(found) > 0 {
		ks.applied.add(ks.pendingOpen.Report)
	}
	ks.pendingCreate, ks.pendingOpen = false, nil
	return nil
}

// adopt takes the newest open incident of list (all of one key) as the key's incident.
// Without a key store, every incident's beganAt marks its opening report as applied, and
// it also recovers from the incident's updates (those with the key's reference) which
// reports were applied, how many failures it counted and whether the closing update is
// already there; and at a restart, a key whose newest incident was ended without the
// bridge's "closed" sentence was ended by a person: it stays suppressed until a success
// or a quiet period.
func (s *Sink) adopt(ctx context.Context, ks *keyState, list []statuspage.Incident, restart bool) error {
	m := s.m
	var open []statuspage.Incident
	var newestEnded *statuspage.Incident
	for i := range list {
		inc := list[i]
		if m.kv == nil { // an opening report redelivered, also after its incident ended
			ks.applied.add(timeToken(began(inc)))
		}
		if inc.EndedAt == nil {
			open = append(open, inc)
		} else if newestEnded == nil || inc.EndedAt.After(*newestEnded.EndedAt) {
			newestEnded = &list[i]
		}
	}
	if len(open) == 0 {
		if restart && newestEnded != nil && ks.inc == nil && !m.endedByBridge(ks, *newestEnded) {
			ks.suppressed = true
			ks.lastFailure = *newestEnded.EndedAt
			s.log.Info().Str("incident", newestEnded.ID).Msg("latest incident of this key was ended by a person; not reopening until a success")
		}
		return nil
	}
	sort.SliceStable(open, func(i, j int) bool { return began(open[i]).After(began(open[j])) })
	chosen := open[0]
	for _, other := range open[1:] {
		s.log.Warn().Str("incident", other.ID).Str("adopted", chosen.ID).
			Msg("several open incidents for one key; adopting the newest, leaving the others to people")
	}
	inc := &openIncident{id: chosen.ID, began: began(chosen), runs: 1}
	if inc.began.IsZero() {
		inc.began = m.now()
	}
	last := inc.began
	if m.kv == nil {
		updates, err := m.client.ListUpdates(ctx, chosen.ID)
		if err != nil {
			return err
		}
		for _, u := range updates {
			ref, kind, ok := parseRef(u.Description)
			if !ok || ref != ks.ref {
				continue
			}
			if kind == refClosing {
				inc.closingPosted = true
				continue
			}
			inc.runs++
			inc.closingPosted = false
			if u.CreatedAt != nil {
				ks.applied.add(timeToken(*u.CreatedAt))
				if u.CreatedAt.After(last) {
					last = *u.CreatedAt
				}
			}
		}
	}
	ks.setIncident(m, inc)
	ks.suppressed = false
	if last.After(ks.lastFailure) {
		ks.lastFailure = last
	}
	s.log.Info().Str("incident", inc.id).Int("runs", inc.runs).Msg("adopted open incident")
	return nil
}

func began(inc statuspage.Incident) time.Time {
	if inc.BeganAt == nil {
		return time.Time{}
	}
	return *inc.BeganAt
}
