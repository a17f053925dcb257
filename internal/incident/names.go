package incident

import (
	"context"
	"errors"
	"fmt"
)

// CheckNames reads the server's catalogue and resolves every route's names without
// changing anything: the routes whose names the server lacks, each with what is missing.
// An error means the catalogue could not be read.
func (m *Manager) CheckNames(ctx context.Context) (unknown map[string]error, err error) {
	if m.client == nil {
		return nil, errors.New("statuspage: no client")
	}
	cat, err := fetchCatalog(ctx, m.client)
	if err != nil {
		return nil, fmt.Errorf("statuspage: read catalogue: %w", err)
	}
	m.cat.Store(cat)
	m.mu.Lock()
	sinks := append([]*Sink(nil), m.order...)
	m.mu.Unlock()
	unknown = map[string]error{}
	for _, s := range sinks {
		if _, err := cat.resolve(&s.cfg); err != nil {
			unknown[s.name] = err
		}
	}
	return unknown, nil
}

// StartKnown is Start for a process that must not stop over a route with an unknown name:
// the routes whose names resolve work, the others are returned (each with what the server
// lacks) and stay unresolved until a catalogue refresh of Run finds their names (Resolved
// says when). An error means the server could not be read; nothing started then.
func (m *Manager) StartKnown(ctx context.Context) (unknown map[string]error, err error) {
	err = m.Start(ctx)
	if err == nil || !errors.Is(err, ErrUnknownNames) {
		return nil, err
	}
	// refreshCatalog stored the ids of every route that resolved; find the others and
	// recover the incidents without them.
	m.mu.Lock()
	sinks := append([]*Sink(nil), m.order...)
	m.mu.Unlock()
	unknown = map[string]error{}
	cat, cerr := fetchCatalog(ctx, m.client)
	for _, s := range sinks {
		if s.target.Load() != nil {
			continue
		}
		unknown[s.name] = ErrUnknownNames
		if cerr == nil {
			if _, rerr := cat.resolve(&s.cfg); rerr != nil {
				unknown[s.name] = rerr
			}
		}
	}
	if err := m.recover(ctx); err != nil {
		return nil, fmt.Errorf("statuspage: find open incidents: %w", err)
	}
	m.mu.Lock()
	m.started.Store(true)
	m.mu.Unlock()
	return unknown, nil
}

// UnknownComponents returns the components derived for this route's reports that the
// status page did not have when last looked up (refreshed with the catalogue), each with
// what is missing: those reports wait, the others go on.
func (s *Sink) UnknownComponents() map[string]string {
	out := map[string]string{}
	for name, u := range s.unknown.list() {
		out[name] = u.reason
	}
	return out
}

// Resolved reports whether the route's names are known on the server (after Start or a
// catalogue refresh).
func (s *Sink) Resolved() bool { return s.target.Load() != nil }
