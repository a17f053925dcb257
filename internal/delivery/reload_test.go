package delivery

import (
	"context"
	"sync"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TestSetRoutesInFlightKeepTheirRoutes: a report matched before SetRoutes is delivered to
// the routes it matched then, even while the swap happens under it; the next report
// takes the new set; a removed route gets nothing new; a changed route (same name) takes
// the new sink for new reports only.
func TestSetRoutesInFlightKeepTheirRoutes(t *testing.T) {
	type got struct{ sink, id string }
	var mu sync.Mutex
	var deliveries []got
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	sink := func(name string, block bool) Sink {
		return sinkFunc(func(_ context.Context, ev *zuul.Event) (bool, error) {
			if block {
				started <- struct{}{}
				<-release
			}
			mu.Lock()
			deliveries = append(deliveries, got{name, ev.ID})
			mu.Unlock()
			return false, nil
		})
	}
	all := func(*zuul.Event) bool { return true }
	o := fastOptions(
		Route{Name: "old-only", Match: all, Targets: []Target{{"test", sink("old-only", true)}}},
		Route{Name: "changed", Match: all, Targets: []Target{{"test", sink("changed-v1", false)}}},
	)
	p := New(o)
	acks := newAcks()
	first := payload(t, "periodic-daily_failure_mixed.json")
	p.Handle(acks.msg(t, "first", first))
	receive(t, started, "the first report in its sink")

	// The swap while the first report is in flight: old-only removed, changed changed,
	// new-only added.
	p.SetRoutes([]Route{
		{Name: "changed", Match: all, Targets: []Target{{"test", sink("changed-v2", false)}}},
		{Name: "new-only", Match: all, Targets: []Target{{"test", sink("new-only", false)}}},
	})
	if names := routeNames(p.Routes()); names != "changed,new-only" {
		t.Fatalf("routes in force %s", names)
	}
	// A report taken after the swap (a different project). It may share the first one's
	// worker and wait behind it, so the first is released before anything is awaited.
	second := payload(t, "periodic-hourly_post_failure.json")
	p.Handle(acks.msg(t, "second", second))
	close(release)
	got1, got2 := receive(t, acks.ch, "an acknowledgement"), receive(t, acks.ch, "the other acknowledgement")
	if got1+","+got2 != "first,second" && got1+","+got2 != "second,first" { // either order: two workers
		t.Fatalf("acknowledged %s and %s, want first and second", got1, got2)
	}
	drain(t, p)

	ev1, _ := zuul.Decode(first)
	ev2, _ := zuul.Decode(second)
	want := map[got]bool{
		{"old-only", ev1.ID}: true, {"changed-v1", ev1.ID}: true,
		{"changed-v2", ev2.ID}: true, {"new-only", ev2.ID}: true,
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != len(want) {
		t.Fatalf("deliveries %v, want %v", deliveries, want)
	}
	for _, d := range deliveries {
		if !want[d] {
			t.Errorf("unexpected delivery %v (want %v)", d, want)
		}
	}
}

func routeNames(rs []Route) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ","
		}
		s += r.Name
	}
	return s
}

// TestSetRoutesSubmit: Submit takes the route set in force when it is called.
func TestSetRoutesSubmit(t *testing.T) {
	var mu sync.Mutex
	var names []string
	mk := func(name string) Route {
		return Route{Name: name, Match: func(*zuul.Event) bool { return true }, Targets: []Target{{"test", sinkFunc(func(context.Context, *zuul.Event) (bool, error) {
			mu.Lock()
			names = append(names, name)
			mu.Unlock()
			return false, nil
		})}}}
	}
	p := New(fastOptions(mk("a")))
	ev, err := zuul.Decode(payload(t, "periodic-daily_failure_mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	p.SetRoutes([]Route{mk("b")})
	if err := p.Submit(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	drain(t, p)
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 2 || names[0] != "a" || names[1] != "b" {
		t.Fatalf("delivered to %v, want [a b]", names)
	}
}
