package incident

import (
	"context"
	"sort"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// clockSkew extends the end of the incident list window: open incidents are listed only
// if beganAt <= end, and beganAt is Zuul's report time, which may run ahead of our clock.
const clockSkew = 24 * time.Hour

// recover rebuilds the state of every key from the status page, the source of truth: one
// GET /incidents (every open incident, plus the ended ones of the last 30 days), and one
// GET .../updates per open incident of the bridge.
func (m *Manager) recover(ctx context.Context) error {
	incs, err := m.listIncidents(ctx)
	if err != nil {
		return err
	}
	byKey := m.ownIncidents(incs)
	for hash, list := range byKey {
		mk, _ := parseMarker(list[0].Description)
		m.mu.Lock()
		s := m.routes[mk.route]
		m.mu.Unlock()
		if s == nil {
			if hasOpen(list) {
				m.log.Warn().Str("route", mk.route).Str("incident", list[0].ID).
					Msg("open incident of a route that is no longer configured; left alone")
			}
			continue
		}
		ks := m.state(hash, s)
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

// ownIncidents groups the incidents carrying this bridge's marker by key hash.
func (m *Manager) ownIncidents(incs []statuspage.Incident) map[string][]statuspage.Incident {
	byKey := map[string][]statuspage.Incident{}
	for _, inc := range incs {
		mk, ok := parseMarker(inc.Description)
		if !ok || mk.bridge != m.bridgeID || inc.ID == "" {
			continue
		}
		byKey[mk.key] = append(byKey[mk.key], inc)
	}
	return byKey
}

func hasOpen(list []statuspage.Incident) bool {
	for _, inc := range list {
		if inc.EndedAt == nil {
			return true
		}
	}
	return false
}

// findOpen looks for an incident of this key that a create with an unseen answer may have
// stored, and adopts it. Only called after such an ambiguous failure (not on the hot path).
func (s *Sink) findOpen(ctx context.Context, ks *keyState) error {
	incs, err := s.m.listIncidents(ctx)
	if err != nil {
		return err
	}
	if err := s.adopt(ctx, ks, s.m.ownIncidents(incs)[ks.hash], false); err != nil {
		return err
	}
	ks.pendingCreate = false
	return nil
}

// adopt takes the newest open incident of list (all of one key) as the key's incident and
// recovers from its updates which reports were applied, how many failures it counted and
// whether the closing update is already there. At a restart, a key whose newest incident
// was ended without the bridge's "resolved" marker was ended by a person: it stays
// suppressed until a success or a quiet period.
func (s *Sink) adopt(ctx context.Context, ks *keyState, list []statuspage.Incident, restart bool) error {
	m := s.m
	var open []statuspage.Incident
	var newestEnded *statuspage.Incident
	for i := range list {
		inc := list[i]
		if mk, ok := parseMarker(inc.Description); ok {
			ks.applied.add(mk.report) // an opening report redelivered after its incident ended
		}
		if inc.EndedAt == nil {
			open = append(open, inc)
		} else if newestEnded == nil || inc.EndedAt.After(*newestEnded.EndedAt) {
			newestEnded = &list[i]
		}
	}
	if len(open) == 0 {
		if restart && newestEnded != nil && ks.inc == nil {
			if mk, _ := parseMarker(newestEnded.Description); !mk.resolved {
				ks.suppressed = true
				ks.lastFailure = *newestEnded.EndedAt
				s.log.Info().Str("incident", newestEnded.ID).Msg("latest incident of this key was ended by a person; not reopening until a success")
			}
		}
		return nil
	}
	sort.SliceStable(open, func(i, j int) bool { return began(open[i]).After(began(open[j])) })
	chosen := open[0]
	for _, other := range open[1:] {
		s.log.Warn().Str("incident", other.ID).Str("adopted", chosen.ID).
			Msg("several open incidents for one key; adopting the newest, leaving the others to people")
	}
	updates, err := m.client.ListUpdates(ctx, chosen.ID)
	if err != nil {
		return err
	}
	inc := &openIncident{id: chosen.ID, began: began(chosen), runs: 1}
	if inc.began.IsZero() {
		inc.began = m.now()
	}
	last := inc.began
	for _, u := range updates {
		mk, ok := parseMarker(u.Description)
		if !ok || mk.bridge != m.bridgeID || mk.key != ks.hash {
			continue
		}
		ks.applied.add(mk.report)
		if mk.resolved {
			inc.closingPosted = true
			continue
		}
		inc.runs++
		inc.closingPosted = false
		if u.CreatedAt != nil && u.CreatedAt.After(last) {
			last = *u.CreatedAt
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
