package pagework_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
)

func (r *rig) newSink(t *testing.T, name, component string) *incident.Sink {
	t.Helper()
	cfg := incident.DefaultRouteConfig()
	cfg.Component = component
	s, err := r.m.NewSink(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSetRoutesWhileRunning: a reload while the worker runs removes a route (its worker
// stops; what reaches its outbox subject stays unapplied), adds one (its worker starts and
// applies its items) and adds one whose names the status page lacks (reported, held).
func TestSetRoutesWhileRunning(t *testing.T) {
	r := newRig(t, true, "Zuul")
	r.run(t)
	waitFor(t, "the first incident", func() bool {
		_, err := r.sinks["Zuul"].Send(t.Context(), failure("o/a"))
		return err == nil && len(r.fake.Incidents()) == 1
	})
	ch, err := r.work.SetRoutes(t.Context(), []*incident.Sink{r.newSink(t, "second", "Zuul"), r.newSink(t, "typo", "Zuull")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Added, []string{"second", "typo"}) || !slices.Equal(ch.Removed, []string{"Zuul"}) {
		t.Fatalf("changes %+v", ch)
	}
	if _, ok := ch.Unknown["typo"]; !ok {
		t.Fatalf("unknown %v", ch.Unknown)
	}
	waitFor(t, "the unknown name reported", func() bool {
		return testutil.ToFloat64(mustGauge(t, r.reg, "zuul_bridge_statuspage_unknown_names", "typo")) == 1
	})
	// A report of the removed route still in flight is stored, and nobody applies it.
	if _, err := r.sinks["Zuul"].Send(t.Context(), failure("o/removed")); err != nil {
		t.Fatal(err)
	}
	second := r.work.TargetOf("second")
	for _, p := range []string{"o/b", "o/c"} {
		if _, err := second.Send(t.Context(), failure(p)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the added route's incidents", func() bool { return len(r.fake.Incidents()) == 3 })
	for _, inc := range r.fake.Incidents() {
		if strings.Contains(inc.DisplayName, "o/removed") {
			t.Errorf("the removed route's item was applied: %s", inc.DisplayName)
		}
	}
	notes := strings.Join(r.work.Notes(), "\n")
	if !strings.Contains(notes, "route typo: unknown names") || strings.Contains(notes, "route Zuul") {
		t.Errorf("notes: %s", notes)
	}
	// Unchanged again: nothing restarts, the same sinks stay.
	ch2, err := r.work.SetRoutes(t.Context(), []*incident.Sink{r.newSink(t, "second", "Zuul"), r.newSink(t, "typo", "Zuull")})
	if err != nil || len(ch2.Unchanged) != 2 || ch2.Sinks["second"] != ch.Sinks["second"] {
		t.Fatalf("unchanged: %+v %v", ch2, err)
	}
	if notes := strings.Join(r.work.Notes(), "\n"); !strings.Contains(notes, "route typo: unknown names") {
		t.Errorf("the unchanged unknown route is not reported any more: %s", notes)
	}
}

// TestRunWaitsForAStatusPageRoute: without a statuspage: route at start, Run sets up
// nothing until a reload brings one.
func TestRunWaitsForAStatusPageRoute(t *testing.T) {
	r := newRig(t, true)
	r.run(t)
	if _, err := r.work.SetRoutes(t.Context(), []*incident.Sink{r.newSink(t, "late", "Zuul")}); err != nil {
		t.Fatal(err)
	}
	late := r.work.TargetOf("late")
	waitFor(t, "the late route's incident", func() bool {
		_, err := late.Send(t.Context(), failure("o/a"))
		return err == nil && len(r.fake.Incidents()) == 1
	})
}
