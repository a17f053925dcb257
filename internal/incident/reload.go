package incident

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
)

// Rules reload (issue 29): the routes of a running manager are replaced as a whole, after
// the new rules file was checked completely. The manager, its key states and its loops
// stay, so that a reload never opens a second incident for a key it holds.

// NewSink validates cfg and builds the sink of a route without registering it: a reload
// builds every sink of the new file first, and only a file that is valid throughout is
// installed with SetRoutes.
func (m *Manager) NewSink(name string, cfg RouteConfig) (*Sink, error) {
	if name == "" {
		return nil, errors.New("statuspage: route name must not be empty")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("statuspage: route %s: %w", name, err)
	}
	return &Sink{m: m, name: name, cfg: cfg, log: m.log.With().Str("route", name).Logger()}, nil
}

// RouteChanges says what SetRoutes did, by route name.
type RouteChanges struct {
	Added, Changed, Removed, Unchanged []string
	// Sinks are the sinks in force after the call, by route: for an unchanged route the
	// sink it had (with its resolved names), for the others the one given.
	Sinks map[string]*Sink
	// Unknown are the added and changed routes whose names the status page lacks (each
	// with what is missing); they stay unresolved until a catalogue refresh finds them.
	// Filled only once the manager started.
	Unknown map[string]error
}

// SetRoutes makes sinks (built by NewSink) the manager's routes, before or after Start:
//
//   - an unchanged route (same name, same configuration) keeps its sink and its ids;
//   - a changed route takes the new sink; its keys keep their state (open incident,
//     streaks), unless its `key:` fields changed: then its reports name other keys, and
//     its old keys are dropped from memory like those of a removed route;
//   - a removed route's keys are dropped from memory; their entries in the key store stay
//     and their open incidents are left alone, as after a restart with the route gone
//     (the route added again finds them on its next report);
//   - after Start, the names of added and changed routes are resolved against the
//     catalogue (one read), and an added route's open incidents are found again in the
//     key store, as at Start.
//
// An error with Sinks nil means nothing changed (a route given twice). Any other error is
// about that reading (the status page or the key store unreachable): the routes are
// installed whatever it says, and the unresolved ones wait for the next catalogue refresh
// of Run.
func (m *Manager) SetRoutes(ctx context.Context, sinks []*Sink) (RouteChanges, error) {
	ch := RouteChanges{Sinks: map[string]*Sink{}, Unknown: map[string]error{}}
	m.mu.Lock()
	old := m.routes
	routes := make(map[string]*Sink, len(sinks))
	order := make([]*Sink, 0, len(sinks))
	var fresh []*Sink         // added or changed: names to resolve
	drop := map[string]bool{} // routes whose keys are forgotten
	repoint := map[string]*Sink{}
	added := map[string]bool{}
	for _, s := range sinks {
		if s.m != m {
			m.mu.Unlock()
			return RouteChanges{}, fmt.Errorf("statuspage: route %s: sink of another manager", s.name)
		}
		if _, dup := routes[s.name]; dup {
			m.mu.Unlock()
			return RouteChanges{}, fmt.Errorf("statuspage: route %s: defined twice", s.name)
		}
		prev, had := old[s.name]
		switch {
		case !had:
			ch.Added = append(ch.Added, s.name)
			added[s.name] = true
			fresh = append(fresh, s)
		case sameConfig(&prev.cfg, &s.cfg):
			ch.Unchanged = append(ch.Unchanged, s.name)
			s = prev
		default:
			ch.Changed = append(ch.Changed, s.name)
			fresh = append(fresh, s)
			if slices.Equal(prev.cfg.Key, s.cfg.Key) {
				repoint[s.name] = s
			} else {
				drop[s.name] = true
			}
		}
		routes[s.name] = s
		order = append(order, s)
		ch.Sinks[s.name] = s
	}
	for name := range old {
		if _, kept := routes[name]; !kept {
			ch.Removed = append(ch.Removed, name)
			drop[name] = true
		}
	}
	m.routes, m.order = routes, order
	var move []*keyState
	for _, ks := range m.keys {
		if ks.sink != nil && (drop[ks.sink.name] || repoint[ks.sink.name] != nil) {
			move = append(move, ks)
		}
	}
	m.mu.Unlock()

	// The keys of changed and removed routes, each under its own lock: a report or a
	// quiet-period check working on it finishes first.
	for _, ks := range move {
		if err := ks.mu.lock(ctx); err != nil {
			return ch, err
		}
		name := ks.sink.name
		if s := repoint[name]; s != nil {
			ks.sink = s
		} else {
			m.mu.Lock()
			if m.keys[ks.hash] == ks {
				delete(m.keys, ks.hash)
			}
			m.mu.Unlock()
			if ks.inc != nil {
				ks.setIncident(m, nil) // no longer counted as held open by this process
				m.log.Info().Str("route", name).Str("incident_key", ks.hash).
					Msg("rules reload: the route of an open incident is gone or names other keys; the incident is left alone")
			}
		}
		ks.mu.unlock()
	}
	if !m.started.Load() || len(fresh) == 0 {
		return ch, nil // Start resolves every route and finds its incidents
	}
	cat, err := fetchCatalog(ctx, m.client)
	if err != nil {
		return ch, fmt.Errorf("statuspage: read catalogue: %w", err)
	}
	for _, s := range fresh {
		t, err := cat.resolve(&s.cfg)
		if err != nil {
			ch.Unknown[s.name] = err
			continue
		}
		s.target.Store(&t)
	}
	if len(added) > 0 {
		if err := m.recoverFromStore(ctx, added); err != nil {
			return ch, fmt.Errorf("statuspage: find open incidents of added routes: %w", err)
		}
	}
	return ch, nil
}

// sameConfig compares the exported fields of two route configurations (the compiled
// templates are derived from them).
func sameConfig(a, b *RouteConfig) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		if !t.Field(i).IsExported() {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}
