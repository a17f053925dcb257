package incident

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// clockSkew extends the end of the incident list window: open incidents are listed only
// if beganAt <= end, and beganAt is Zuul's report time, which may run ahead of our clock.
const clockSkew = 24 * time.Hour

// recover rebuilds the state of every key before the first report is handled, from the
// key store: one GET /incidents (the maintenance view), then per key entry one KV get and,
// for an entry naming an incident, one GET /incidents/{id} (replicas.go, sync).
func (m *Manager) recover(ctx context.Context) error {
	if m.kv == nil {
		return errors.New("statuspage: no key store (the incident keys need JetStream)")
	}
	if _, err := m.listIncidents(ctx); err != nil {
		return err
	}
	return m.recoverFromStore(ctx, nil)
}

// recoverFromStore reads the entries of the key store (if it can list its keys) and
// brings each key's state in line with it, as a report of the key would: every entry at
// Start (only: nil), the entries of the given routes when a reload adds them (an incident
// opened before the route was removed, or by another replica that had the route already).
func (m *Manager) recoverFromStore(ctx context.Context, only map[string]bool) error {
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
		if only != nil && (err != nil || !only[e.Route]) {
			continue // another route's: not this reload's business
		}
		m.mu.Lock()
		s := m.routes[e.Route]
		m.mu.Unlock()
		if err != nil || s == nil {
			m.log.Warn().Str("key", hash).Str("route", e.Route).Msg("key store entry of no configured route; left alone")
			continue
		}
		ks := m.state(hash, s)
		if err := ks.mu.lock(ctx); err != nil {
			return err
		}
		a := &apply{s: s, ks: ks, log: s.log.With().Str("incident_key", ks.hash).Logger()}
		err = a.sync(ctx)
		if ks.inc != nil {
			// An update posted just before the stop may be missing from the entry: the
			// key's first update looks for its own (one GET) before posting.
			ks.inc.verifyUpdates = true
		}
		ks.mu.unlock()
		if errors.Is(err, ErrKeyBusy) || errors.Is(err, ErrKeyResolving) {
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
	s.adopt(ks, found)
	if len(found) > 0 {
		ks.applied.add(ks.pendingOpen.Report)
	}
	ks.pendingCreate, ks.pendingOpen = false, nil
	return nil
}

// adopt takes the newest open incident of list (all of one key) as the key's incident.
func (s *Sink) adopt(ks *keyState, list []statuspage.Incident) {
	m := s.m
	var open []statuspage.Incident
	for _, inc := range list {
		if inc.EndedAt == nil {
			open = append(open, inc)
		}
	}
	if len(open) == 0 {
		return
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
	ks.setIncident(m, inc)
	ks.suppressed = false
	ks.lastFailure = later(ks.lastFailure, inc.began)
	s.log.Info().Str("incident", inc.id).Msg("adopted open incident")
}

func began(inc statuspage.Incident) time.Time {
	if inc.BeganAt == nil {
		return time.Time{}
	}
	return *inc.BeganAt
}
