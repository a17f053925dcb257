package incident_test

import (
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
)

func newSink(t *testing.T, m *incident.Manager, name string, cfg incident.RouteConfig) *incident.Sink {
	t.Helper()
	s, err := m.NewSink(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSetRoutesKeepsKeyState: a reload that changes a route keeps the key's open incident
// (the next failure updates it, no second incident); an unchanged route keeps its sink;
// a removed route's incident is left alone (not resolved by the quiet period) and found
// again when the route comes back.
func TestSetRoutesKeepsKeyState(t *testing.T) {
	e := newStoreEnv(t, func(c *incident.RouteConfig) { c.QuietPeriod = time.Hour })
	ctx := t.Context()
	e.send(fail(1, hours(0)))
	eq(t, "open incidents", e.m.OpenIncidents(), 1)

	// Unchanged: the same sink stays in force.
	ch, err := e.m.SetRoutes(ctx, []*incident.Sink{newSink(t, e.m, routeName, e.cfg)})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "unchanged", len(ch.Unchanged), 1)
	eq(t, "same sink", ch.Sinks[routeName], e.sink)

	// Changed (another update text): the open incident is the key's still.
	changed := e.cfg
	changed.Update = "Still red\nFailed again."
	ch, err = e.m.SetRoutes(ctx, []*incident.Sink{newSink(t, e.m, routeName, changed)})
	if err != nil || len(ch.Changed) != 1 || len(ch.Unknown) != 0 {
		t.Fatalf("changed: %+v %v", ch, err)
	}
	e.sink = ch.Sinks[routeName]
	e.send(fail(2, hours(1)))
	eq(t, "incidents after the change", len(e.incidents()), 1)
	eq(t, "updates", len(e.incidents()[0].Updates), 1)
	eq(t, "update title", e.incidents()[0].Updates[0].DisplayName, "Still red")

	// Removed: nothing resolves the incident meanwhile, though its quiet period passes.
	ch, err = e.m.SetRoutes(ctx, nil)
	if err != nil || len(ch.Removed) != 1 {
		t.Fatalf("removed: %+v %v", ch, err)
	}
	eq(t, "open incidents held", e.m.OpenIncidents(), 0)
	e.clock.Set(hours(5))
	if err := e.m.ResolveQuiet(ctx); err != nil {
		t.Fatal(err)
	}
	eq(t, "left alone", e.incidents()[0].EndedAt == nil, true)

	// Added again: its open incident is found in the key store, and the quiet period
	// resolves it (no second incident).
	ch, err = e.m.SetRoutes(ctx, []*incident.Sink{newSink(t, e.m, routeName, changed)})
	if err != nil || len(ch.Added) != 1 {
		t.Fatalf("added: %+v %v", ch, err)
	}
	eq(t, "open incidents found again", e.m.OpenIncidents(), 1)
	if err := e.m.ResolveQuiet(ctx); err != nil {
		t.Fatal(err)
	}
	eq(t, "incidents", len(e.incidents()), 1)
	eq(t, "resolved", e.incidents()[0].EndedAt != nil, true)
}

// TestSetRoutesUnknownName: an added route naming a component the status page lacks is
// reported and left unresolved; the others work.
func TestSetRoutesUnknownName(t *testing.T) {
	e := newStoreEnv(t, nil)
	bad := e.cfg
	bad.Component = "Zuull"
	ch, err := e.m.SetRoutes(t.Context(), []*incident.Sink{newSink(t, e.m, routeName, e.cfg), newSink(t, e.m, "typo", bad)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ch.Unknown["typo"]; !ok || len(ch.Unknown) != 1 || len(ch.Added) != 1 {
		t.Fatalf("%+v", ch)
	}
	eq(t, "typo resolved", ch.Sinks["typo"].Resolved(), false)
	eq(t, "kept resolved", ch.Sinks[routeName].Resolved(), true)
	if _, err := e.m.SetRoutes(t.Context(), []*incident.Sink{ch.Sinks["typo"], ch.Sinks["typo"]}); err == nil {
		t.Fatal("a route twice was taken")
	}
}
