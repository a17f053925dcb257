package incident

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// Earlier versions of the bridge ended every text with a marker line:
//
//	zuul-bridge: key=<bridge id>/<key hash> route=<route> report=<report hash> [resolved]
//
// At Start the open incidents of this bridge that carry one are taken over, so that an
// upgrade neither orphans them nor opens a second incident for their key; the closing
// PATCH removes the line from the description (updates already posted keep theirs).
const legacyPrefix = "zuul-bridge: "

type legacyMarker struct {
	bridge, key, route, report string
	resolved                   bool
}

// parseLegacy finds the last marker line of text; anything malformed is "none".
func parseLegacy(text string) (legacyMarker, bool) {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, legacyPrefix) {
			continue
		}
		var m legacyMarker
		for _, f := range strings.Fields(strings.TrimPrefix(line, legacyPrefix)) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "key":
				m.bridge, m.key, _ = strings.Cut(v, "/")
			case "route":
				if r, err := url.QueryUnescape(v); err == nil {
					m.route = r
				}
			case "report":
				m.report = v
			case "resolved":
				m.resolved = true
			}
		}
		if m.bridge == "" || m.key == "" {
			return legacyMarker{}, false
		}
		return m, true
	}
	return legacyMarker{}, false
}

// stripLegacy removes marker lines from a description.
func stripLegacy(text string) string {
	if !strings.Contains(text, legacyPrefix) {
		return text
	}
	var keep []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), legacyPrefix+"key=") {
			keep = append(keep, line)
		}
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}

// adoptLegacy takes over the open incidents of this bridge that carry a marker line.
func (m *Manager) adoptLegacy(ctx context.Context, incs []statuspage.Incident) error {
	for _, inc := range incs {
		if inc.EndedAt != nil || inc.ID == "" {
			continue
		}
		mk, ok := parseLegacy(inc.Description)
		if !ok || mk.bridge != m.bridgeID {
			continue
		}
		m.mu.Lock()
		s := m.routes[mk.route]
		m.mu.Unlock()
		if s == nil {
			m.log.Warn().Str("incident", inc.ID).Msg("open incident of a route that is no longer configured; left alone")
			continue
		}
		ks := m.state(m.ref(s.name, mk.key), mk.key, s)
		if err := ks.mu.lock(ctx); err != nil {
			return err
		}
		err := s.adoptLegacy(ctx, ks, inc, mk)
		ks.mu.unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// adoptLegacy recovers one marked incident from its updates (the marked ones, and those
// with the key's reference) and, with a key store, writes the key's entry for it.
func (s *Sink) adoptLegacy(ctx context.Context, ks *keyState, cur statuspage.Incident, mk legacyMarker) error {
	m := s.m
	if ks.inc != nil {
		return nil // known already (from the store)
	}
	updates, err := m.client.ListUpdates(ctx, cur.ID)
	if err != nil {
		return err
	}
	inc := &openIncident{id: cur.ID, began: began(cur), runs: 1}
	if inc.began.IsZero() {
		inc.began = m.now()
	}
	ks.applied.add(mk.report)
	if m.kv == nil {
		ks.applied.add(timeToken(inc.began))
	}
	last := inc.began
	for _, u := range updates {
		closing := false
		if um, ok := parseLegacy(u.Description); ok && um.key == mk.key {
			ks.applied.add(um.report)
			closing = um.resolved
		} else if ref, kind, ok := parseRef(u.Description); ok && ref == ks.ref {
			closing = kind == refClosing
		} else {
			continue
		}
		if closing {
			inc.closingPosted = true
			continue
		}
		inc.runs++
		inc.closingPosted = false
		if u.CreatedAt != nil {
			if m.kv == nil {
				ks.applied.add(timeToken(*u.CreatedAt))
			}
			last = later(last, *u.CreatedAt)
		}
	}
	ks.setIncident(m, inc)
	ks.lastFailure = later(ks.lastFailure, last)
	s.log.Info().Str("incident", inc.id).Int("runs", inc.runs).Msg("took over an incident with a marker line of an earlier version")
	if m.kv == nil {
		return nil
	}
	a := &apply{s: s, ks: ks}
	rev, err := m.kv.Create(ctx, ks.hash, a.openEntry().encode())
	switch {
	case errors.Is(err, kvstore.ErrKeyExists):
		ks.kvRev = 0 // another replica was quicker: the next report reads its entry
	case err != nil:
		return storeError("create", err)
	default:
		ks.kvRev = rev
	}
	return nil
}
