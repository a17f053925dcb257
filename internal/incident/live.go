package incident

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// The hot path (open and update) reads nothing: what it must know about the server that
// people change — maintenance windows and incidents ended or deleted by hand — comes from
// one GET /incidents for all keys, repeated every IncidentRefreshInterval (default 1m)
// by Run and seeded by the recovery list at Start. The price is staleness of at most one
// interval:
//
//   - a maintenance incident created (or moved) less than one refresh ago does not yet
//     suppress a new incident; maintenance windows already known are compared with the
//     clock at every open, so one that begins or ends between two refreshes is honoured;
//   - an update may still be posted to an incident a person ended less than one refresh
//     ago. That breaks no promise: updates never touch endedAt and nothing reopens an
//     incident; once the refresh sees it, the key is suppressed until a success.
//
// Resolving is the exception: the PATCH that ends an incident would overwrite a person's
// endedAt, and the API has no conditional write, so resolve still reads the incident
// first (resolves are rare).

// defaultIncidentRefresh is short because maintenance and hand-ends are read from it.
const defaultIncidentRefresh = time.Minute

// liveView is the part of one incident list the hot path needs: the maintenance windows
// per component id.
type liveView struct {
	maintenance map[string][]window
}

// window is one maintenance incident on a component: [began, ended), ended nil = open.
type window struct {
	incident string
	began    time.Time
	ended    *time.Time
}

// newLiveView extracts the maintenance windows from an incident list. Maintenance is an
// impact with severity 0; like GET /components?at=T, an incident is active
// at T when beganAt < T and (endedAt > T or endedAt is null).
func newLiveView(incs []statuspage.Incident) *liveView {
	v := &liveView{maintenance: map[string][]window{}}
	for _, inc := range incs {
		if inc.BeganAt == nil {
			continue // never active (the server's `at` query excludes it too)
		}
		for _, im := range inc.Affects {
			if im.Severity != nil && *im.Severity <= 0 && im.Reference != "" {
				v.maintenance[im.Reference] = append(v.maintenance[im.Reference],
					window{incident: inc.ID, began: *inc.BeganAt, ended: inc.EndedAt})
			}
		}
	}
	return v
}

// underMaintenance reports the maintenance incident active on componentID at t, if any.
func (v *liveView) underMaintenance(componentID string, t time.Time) (incidentID string, ok bool) {
	if v == nil {
		return "", false
	}
	for _, w := range v.maintenance[componentID] {
		if w.began.Before(t) && (w.ended == nil || w.ended.After(t)) {
			return w.incident, true
		}
	}
	return "", false
}

// listIncidents is the one list the bridge reads: every open incident plus the ended ones
// of the recovery window. It also renews the maintenance view.
func (m *Manager) listIncidents(ctx context.Context) ([]statuspage.Incident, error) {
	now := m.now()
	incs, err := m.client.ListIncidents(ctx, now.Add(-recoveryLookback), now.Add(clockSkew))
	if err != nil {
		return nil, err
	}
	m.live.Store(newLiveView(incs))
	return incs, nil
}

// RefreshIncidents reads the incident list once (one GET /incidents) and renews what the
// hot path relies on: the maintenance windows, and for every key the state of its open
// incident (ended by a person -> the key is suppressed; ended by the bridge's own PATCH
// whose answer was lost -> counted as resolved; deleted -> like ended by a person). Run
// calls it every IncidentRefreshInterval; it is exported so that tests can drive it.
// A key busy with a delivery is skipped and looked at by the next refresh.
func (m *Manager) RefreshIncidents(ctx context.Context) error {
	// Incidents set on a key after this point may be missing from the list just because
	// they were created after it was read.
	known := m.incSeq.Load()
	incs, err := m.listIncidents(ctx)
	if err != nil {
		return fmt.Errorf("statuspage: refresh incidents: %w", err)
	}
	byID := make(map[string]*statuspage.Incident, len(incs))
	for i := range incs {
		byID[incs[i].ID] = &incs[i]
	}
	var errs []error
	for _, ks := range m.snapshot() {
		if !ks.mu.tryLock() {
			continue
		}
		if err := m.noticeEnded(ctx, ks, byID, known); err != nil {
			errs = append(errs, err)
		}
		ks.mu.unlock()
	}
	return errors.Join(errs...)
}

// noticeEnded compares a key's open incident with the list. An incident missing from the
// list (deleted, or ended by hand with an endedAt before the window) is read once by id to
// tell which; that read happens in the background and only for vanished incidents.
func (m *Manager) noticeEnded(ctx context.Context, ks *keyState, byID map[string]*statuspage.Incident, known uint64) error {
	if ks.inc == nil || ks.sink == nil {
		return nil
	}
	s, inc := ks.sink, ks.inc
	log := s.log.With().Str("incident_key", ks.hash).Str("incident", inc.id).Logger()
	cur, listed := byID[inc.id]
	if !listed {
		if inc.seq > known {
			return nil // created after the list was read
		}
		got, err := m.client.GetIncident(ctx, inc.id)
		switch {
		case statuspage.StatusOf(err) == http.StatusNotFound:
			log.Info().Msg("incident was deleted; not reopening until a success")
			ks.setIncident(m, nil)
			ks.successStreak = 0
			ks.suppressed = true
			return nil
		case err != nil:
			return fmt.Errorf("statuspage: route %s: look up incident %s: %w", s.name, inc.id, err)
		}
		cur = &got
	}
	if cur.EndedAt == nil {
		return nil
	}
	byBridge := endedByBridge(ks, *cur)
	ks.setIncident(m, nil)
	ks.successStreak = 0
	if byBridge {
		// The bridge's own closing PATCH went through although its answer was lost.
		m.obs.IncidentResolved(s.name)
		log.Info().Msg("incident was ended by the bridge")
		return nil
	}
	ks.suppressed = true
	log.Info().Msg("incident was ended by a person; not reopening until a success")
	return nil
}
