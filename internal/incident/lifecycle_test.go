package incident_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// The basic scenario: failure, failure, success -> exactly one incident
// with one update, ended with the last phase and a closing update. Also the cost of
// every step in API calls. Run against both server versions and a server rendering times
// in +01:00.
func TestFailureFailureSuccess(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name string
		opts statuspagefake.Options
	}{
		{"v1.0.0", statuspagefake.Options{Version: statuspagefake.V100}},
		{"v1.0.1", statuspagefake.Options{Version: statuspagefake.V101}},
		{"server in +01:00", statuspagefake.Options{Location: berlin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts, nil)
			eqCalls(t, "open", e.calls(func() { e.send(fail(1, hours(0))) }),
				"POST /incidents")
			eqCalls(t, "update", e.calls(func() { e.send(fail(2, hours(24))) }),
				"POST /incidents/{id}/updates")
			eqCalls(t, "resolve", e.calls(func() { e.send(ok(3, hours(48))) }),
				"GET /incidents/{id}", "POST /incidents/{id}/updates", "PATCH /incidents/{id}")

			incs := e.incidents()
			if len(incs) != 1 {
				t.Fatalf("incidents: got %d, want 1", len(incs))
			}
			inc := incs[0]
			if inc.BeganAt == nil || !inc.BeganAt.Equal(hours(0)) {
				t.Errorf("beganAt = %v, want %v", inc.BeganAt, hours(0))
			}
			if inc.EndedAt == nil || !inc.EndedAt.Equal(hours(48)) {
				t.Errorf("endedAt = %v, want %v", inc.EndedAt, hours(48))
			}
			if inc.Phase == nil || *inc.Phase != (statuspagefake.Phase{Generation: 1, Order: 4}) {
				t.Errorf("phase = %+v, want 1/4 (Done)", inc.Phase)
			}
			if len(inc.Affects) != 1 || inc.Affects[0].Reference != e.fake.ComponentID("Zuul") ||
				inc.Affects[0].Type != e.fake.ImpactTypeID("Unknown") || inc.Affects[0].Severity == nil || *inc.Affects[0].Severity != 66 {
				t.Errorf("affects = %+v, want Zuul/Unknown/66", inc.Affects)
			}
			eq(t, "title", inc.DisplayName, "Nightly checks of SovereignCloudStack/k8s-cluster-api-provider (periodic-daily, main)")
			eq(t, "description", inc.Description, "Nightly checks of SovereignCloudStack/k8s-cluster-api-provider on branch main "+
				"started failing on 21 Nov 2026 at 10:00 UTC: e2e failed. Details: https://zuul.scs.community/t/scs/buildset/bs1")
			if len(inc.Updates) != 2 {
				t.Fatalf("updates: got %d, want 2 (one failure, one closing): %+v", len(inc.Updates), inc.Updates)
			}
			eq(t, "update 0", inc.Updates[0].DisplayName, "Still failing")
			eq(t, "update 0 createdAt", inc.Updates[0].CreatedAt.Equal(hours(24)), true)
			eq(t, "update 0 text", inc.Updates[0].Description, "Failed again at 10:00 UTC, 2 nights in a row. "+
				"Details: https://zuul.scs.community/t/scs/buildset/bs2")
			eq(t, "closing update", inc.Updates[1].DisplayName, "Resolved")
			eq(t, "closing update text", inc.Updates[1].Description, "Passing again since 10:00 UTC. "+
				"Details: https://zuul.scs.community/t/scs/buildset/bs3")
			opened, updated, resolved, _ := e.obs.get()
			eq(t, "opened", opened, 1)
			eq(t, "updated", updated, 1)
			eq(t, "resolved", resolved, 1)
			eq(t, "open incidents", e.m.OpenIncidents(), 0)

			// A new outage after the success opens a new incident.
			e.send(fail(4, hours(72)))
			eq(t, "incidents after a new failure", len(e.incidents()), 2)
		})
	}
}

// An update says what changed: a job failing that did not before is named; after a
// restart, when the previous report is unknown, the failing jobs are named.
func TestUpdateSaysWhatChanged(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.send(fail(1, hours(0)))
	second := fail(2, hours(24))
	second.Builds[1].Result, second.Builds[1].Voting = "TIMED_OUT", true
	e.send(second)
	e.restart()
	e.send(fail(3, hours(48)))
	ups := e.incidents()[0].Updates
	if len(ups) != 2 {
		t.Fatalf("updates: %+v", ups)
	}
	if want := "Failed again at 10:00 UTC, 2 nights in a row; now also lint timed out. Details:"; !strings.HasPrefix(ups[0].Description, want) {
		t.Errorf("update 1: %q, want it to begin with %q", ups[0].Description, want)
	}
	if want := "Failed again at 10:00 UTC, 3 nights in a row: e2e failed. Details:"; !strings.HasPrefix(ups[1].Description, want) {
		t.Errorf("update 2 (after a restart): %q, want it to begin with %q", ups[1].Description, want)
	}
}

// The open phase is "Investigation ongoing" (order 1) while the incident is open.
func TestOpenPhase(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.send(fail(1, hours(0)))
	inc := e.incidents()[0]
	if inc.Phase == nil || *inc.Phase != (statuspagefake.Phase{Generation: 1, Order: 1}) || inc.EndedAt != nil {
		t.Errorf("open incident: phase %+v endedAt %v, want 1/1 and open", inc.Phase, inc.EndedAt)
	}
	eq(t, "open incidents", e.m.OpenIncidents(), 1)
}

func TestOpenAfterResolveAfter(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, func(c *incident.RouteConfig) { c.OpenAfter = 2; c.ResolveAfter = 2 })
	eqCalls(t, "first failure only counts", e.calls(func() { e.send(fail(1, hours(0))) }))
	e.send(ok(2, hours(1))) // resets the streak
	e.send(fail(3, hours(2)))
	eq(t, "incidents after fail, ok, fail", len(e.incidents()), 0)
	eqCalls(t, "second consecutive failure opens", e.calls(func() { e.send(fail(4, hours(3))) }), "POST /incidents")
	inc := e.incidents()[0]
	eq(t, "beganAt is the opening report's", inc.BeganAt.Equal(hours(3)), true)
	eqCalls(t, "first success only counts", e.calls(func() { e.send(ok(5, hours(4))) }))
	e.send(fail(6, hours(5))) // resets the success streak, posts an update
	e.send(ok(7, hours(6)))
	eq(t, "still open", e.incidents()[0].EndedAt == nil, true)
	e.send(ok(8, hours(7)))
	inc = e.incidents()[0]
	eq(t, "ended", inc.EndedAt != nil && inc.EndedAt.Equal(hours(7)), true)
	eq(t, "updates (1 failure + closing)", len(inc.Updates), 2)
}

func TestQuietPeriod(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, func(c *incident.RouteConfig) { c.QuietPeriod = 36 * time.Hour })
	e.send(fail(1, hours(0)))
	e.send(fail(2, hours(24)))
	e.clock.Set(hours(24 + 35))
	eqCalls(t, "quiet period not over", e.calls(func() {
		if err := e.m.ResolveQuiet(t.Context()); err != nil {
			t.Fatal(err)
		}
	}))
	e.clock.Set(hours(24 + 36))
	eqCalls(t, "quiet period over", e.calls(func() {
		if err := e.m.ResolveQuiet(t.Context()); err != nil {
			t.Fatal(err)
		}
	}), "GET /incidents/{id}", "POST /incidents/{id}/updates", "PATCH /incidents/{id}")
	inc := e.incidents()[0]
	eq(t, "endedAt = now", inc.EndedAt != nil && inc.EndedAt.Equal(hours(60)), true)
	eq(t, "phase Done", inc.Phase.Order, 4)
	eq(t, "updates", len(inc.Updates), 2)
	if !strings.Contains(inc.Updates[1].Description, "No failure was reported for 36 hours.") {
		t.Errorf("closing update: %q", inc.Updates[1].Description)
	}
	eqCalls(t, "nothing left to resolve", e.calls(func() { _ = e.m.ResolveQuiet(t.Context()) }))
}

// A restart between the reports (a new Manager on the same server) finds the incident
// again: no second incident, the redelivered first report changes nothing, and the run
// count goes on.
func TestRestartInTheMiddle(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.send(fail(1, hours(0)))
	e.send(fail(2, hours(24)))

	e.fake.ResetRequests()
	e.restart()
	var gets int
	for _, r := range e.fake.Requests() {
		if r.Method != "GET" {
			t.Errorf("Start wrote: %s %s", r.Method, r.Path)
		}
		gets++
	}
	eq(t, "Start calls (4 catalogue, 1 list, 1 updates)", gets, 6)
	eq(t, "open incidents after restart", e.m.OpenIncidents(), 1)

	eqCalls(t, "redelivered reports", e.calls(func() {
		e.send(fail(1, hours(0)))
		e.send(fail(2, hours(24)))
	}))
	e.send(fail(3, hours(48)))
	e.restart()
	e.send(ok(4, hours(72)))
	incs := e.incidents()
	eq(t, "incidents", len(incs), 1)
	eq(t, "ended", incs[0].EndedAt != nil, true)
	eq(t, "updates (2 failures + closing)", len(incs[0].Updates), 3)
	if !strings.Contains(incs[0].Updates[1].Description, "3 nights in a row") {
		t.Errorf("run count does not continue: %q", incs[0].Updates[1].Description)
	}
	e.restart()
	eq(t, "no open incident after the end", e.m.OpenIncidents(), 0)
	e.send(fail(5, hours(96)))
	eq(t, "a failure after a bridge-resolved incident opens a new one", len(e.incidents()), 2)
}

func TestDuplicateDelivery(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	reports := []func(){
		func() { e.send(fail(1, hours(0))) },
		func() { e.send(fail(2, hours(24))) },
		func() { e.send(ok(3, hours(48))) },
	}
	for i, r := range reports {
		r()
		eqCalls(t, "duplicate of report "+string(rune('1'+i)), e.calls(r))
	}
	incs := e.incidents()
	eq(t, "incidents", len(incs), 1)
	eq(t, "updates", len(incs[0].Updates), 2)
}

// People win: an incident ended by hand is not reopened by the same outage, also not
// after a restart; a success ends the suppression. The hot path does not read: the hand-end
// is noticed by the background incident refresh (or the recovery at a restart); an update
// posted before that refresh is harmless, the person's endedAt stays.
func TestHandEnded(t *testing.T) {
	for _, tc := range []struct {
		name        string
		refresh     bool // a background refresh runs right after the hand-end
		restart     bool
		updates     int // posted to the ended incident before the bridge noticed
		suppression int
	}{
		{"same process, refreshed", true, false, 0, 2},
		{"same process, update before the refresh", false, false, 1, 1},
		{"after restart", false, true, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, statuspagefake.Options{}, nil)
			e.send(fail(1, hours(0)))
			id := e.incidents()[0].ID
			e.fake.EndIncident(id, hours(1))
			if tc.refresh {
				eqCalls(t, "refresh", e.calls(func() { refreshIncidents(t, e) }), "GET /incidents")
				eq(t, "open incidents after the refresh", e.m.OpenIncidents(), 0)
			}
			if tc.restart {
				e.restart()
			}
			e.send(fail(2, hours(24)))
			if !tc.refresh && !tc.restart {
				refreshIncidents(t, e)
			}
			eqCalls(t, "suppressed failure", e.calls(func() { e.send(fail(3, hours(48))) }))
			incs := e.incidents()
			eq(t, "incidents", len(incs), 1)
			eq(t, "updates on the hand-ended incident", len(incs[0].Updates), tc.updates)
			eq(t, "endedAt kept", incs[0].EndedAt.Equal(hours(1)), true)
			_, _, _, sup := e.obs.get()
			eq(t, "suppressed hand-ended", sup["hand-ended"], tc.suppression)

			e.send(ok(4, hours(72)))
			eq(t, "success touches nothing", len(e.incidents()[0].Updates), tc.updates)
			eq(t, "endedAt still kept", e.incidents()[0].EndedAt.Equal(hours(1)), true)
			e.send(fail(5, hours(96)))
			eq(t, "new outage, new incident", len(e.incidents()), 2)
		})
	}
}

// The bridge's own closing PATCH went through but its answer was lost, and no success
// came again: the refresh recognises the incident as ended by the bridge, and the next
// failure is a new outage.
func TestRefreshSeesOwnResolve(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.send(fail(1, hours(0)))
	e.fake.SetFault(loseAnswerOnce("PATCH", ""))
	if retry, err := e.sink.Send(t.Context(), ok(2, hours(24))); !retry || err == nil {
		t.Fatalf("lost PATCH answer: retry=%v err=%v", retry, err)
	}
	e.fake.SetFault(nil)
	eq(t, "ended on the server", e.incidents()[0].EndedAt != nil, true)
	refreshIncidents(t, e)
	_, _, resolved, _ := e.obs.get()
	eq(t, "resolved counted", resolved, 1)
	eq(t, "open incidents", e.m.OpenIncidents(), 0)
	// The key's entry still names the ended incident (the PATCH's answer was lost): one look.
	eqCalls(t, "next failure opens a new incident", e.calls(func() { e.send(fail(3, hours(48))) }),
		"GET /incidents/{id}", "POST /incidents")
	eq(t, "incidents", len(e.incidents()), 2)
}

// A component under maintenance (an incident with severity 0 on it, now between its
// beganAt and endedAt) gets no new incident. The maintenance windows come from the
// background incident list: an open reads nothing.
func TestMaintenance(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	zero := 0
	began, ended := hours(-1), hours(2)
	e.fake.PutIncident(statuspagefake.Incident{
		DisplayName: "Zuul upgrade", BeganAt: &began, EndedAt: &ended,
		Phase:   &statuspagefake.Phase{Generation: 1, Order: 0},
		Affects: []statuspagefake.Impact{{Reference: e.fake.ComponentID("Zuul"), Type: e.fake.ImpactTypeID("Maintenance"), Severity: &zero}},
	})
	e.clock.Set(hours(1))
	refreshIncidents(t, e)
	eq(t, "Plan of a suppressed open", len(e.sink.Plan(fail(1, hours(1)))), 0)
	eqCalls(t, "suppressed", e.calls(func() { e.send(fail(1, hours(1))) }))
	eq(t, "incidents", len(e.incidents()), 1)
	_, _, _, sup := e.obs.get()
	eq(t, "suppressed maintenance", sup["maintenance"], 1)

	// The window is compared with the clock at every open: its end needs no refresh.
	e.clock.Set(hours(3))
	eqCalls(t, "after the maintenance", e.calls(func() { e.send(fail(2, hours(3))) }), "POST /incidents")
	eq(t, "incident after the maintenance", len(e.incidents()), 2)
}

// A maintenance window already known when it begins suppresses without a refresh; one
// created after the last refresh does not yet (the documented staleness).
func TestMaintenanceStaleness(t *testing.T) {
	putMaintenance := func(e *env, began, ended time.Time) {
		zero := 0
		e.fake.PutIncident(statuspagefake.Incident{
			DisplayName: "maintenance", BeganAt: &began, EndedAt: &ended,
			Phase:   &statuspagefake.Phase{Generation: 1, Order: 0},
			Affects: []statuspagefake.Impact{{Reference: e.fake.ComponentID("Zuul"), Type: e.fake.ImpactTypeID("Maintenance"), Severity: &zero}},
		})
	}
	e := newEnv(t, statuspagefake.Options{}, nil)
	putMaintenance(e, hours(2), hours(4)) // planned: begins after the refresh
	refreshIncidents(t, e)
	e.clock.Set(hours(3))
	eqCalls(t, "planned window begun", e.calls(func() { e.send(fail(1, hours(3))) }))
	eq(t, "incidents", len(e.incidents()), 1)

	e = newEnv(t, statuspagefake.Options{}, nil)
	e.clock.Set(hours(1))
	putMaintenance(e, hours(0), hours(2)) // created after the last read
	eqCalls(t, "not refreshed yet: opens", e.calls(func() { e.send(fail(1, hours(1))) }), "POST /incidents")
}

// Run reads the incident list every IncidentRefreshInterval: a hand-end is noticed
// without any report.
func TestRunRefreshesIncidents(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.incEvery = 20 * time.Millisecond
	e.restart()
	e.send(fail(1, hours(0)))
	e.fake.EndIncident(e.incidents()[0].ID, hours(1))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.m.OpenIncidents() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not notice the hand-ended incident")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context being cancelled")
	}
	eqCalls(t, "suppressed failure", e.calls(func() { e.send(fail(2, hours(24))) }))
	eq(t, "no update on the hand-ended incident", len(e.incidents()[0].Updates), 0)
}

func refreshIncidents(t *testing.T, e *env) {
	t.Helper()
	if err := e.m.RefreshIncidents(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Start fails with every unknown name and the names the server has.
func TestStartUnknownNames(t *testing.T) {
	f := statuspagefake.New(t, statuspagefake.Options{})
	c, _ := statuspage.NewClient(statuspage.ClientOptions{BaseURL: f.URL()})
	m := incident.NewManager(incident.ManagerOptions{Client: c})
	cfg := incident.DefaultRouteConfig()
	cfg.Component = "Zuul CI"
	cfg.ImpactType = "Outage"
	cfg.Severity = "critical"
	cfg.OpenPhase = "Investigating"
	if _, err := m.AddRoute("r", cfg); err != nil {
		t.Fatal(err)
	}
	err := m.Start(t.Context())
	if err == nil {
		t.Fatal("Start succeeded with unknown names")
	}
	for _, want := range []string{
		`route r`, `no component named "Zuul CI"`, `"Zuul"`, `"Harbor"`,
		`no impact type named "Outage"`, `"Unknown"`, `no severity named "critical"`, `"limited=66"`,
		`open_phase: no phase named "Investigating"`, `"Investigation ongoing"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestComponentLabelsAndNumericSeverity(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, func(c *incident.RouteConfig) {
		c.Component = ""
		c.ComponentLabels = map[string]string{"role": "idp"} // UCS only
		c.Severity = "100"
		c.ImpactType = "Connectivity Problems"
	})
	e.send(fail(1, hours(0)))
	im := e.incidents()[0].Affects[0]
	eq(t, "component", im.Reference, e.fake.ComponentID("UCS"))
	eq(t, "impact type", im.Type, e.fake.ImpactTypeID("Connectivity Problems"))
	eq(t, "severity", *im.Severity, 100)

	f := statuspagefake.New(t, statuspagefake.Options{})
	c, _ := statuspage.NewClient(statuspage.ClientOptions{BaseURL: f.URL()})
	m := incident.NewManager(incident.ManagerOptions{Client: c})
	cfg := incident.DefaultRouteConfig()
	cfg.ComponentLabels = map[string]string{"system": "gx-scs"} // Zuul and Harbor
	if _, err := m.AddRoute("r", cfg); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "match 2 components") {
		t.Errorf("ambiguous selector: %v", err)
	}
}

// Every further failure counts one more night, in the same process and after a restart
// (the count comes back from the key's entry).
func TestUpdatesCountTheNights(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.send(fail(1, hours(0)))
	e.send(fail(2, hours(24)))
	e.send(fail(3, hours(48)))
	e.restart()
	e.send(fail(4, hours(72)))
	ups := e.incidents()[0].Updates
	if len(ups) != 3 {
		t.Fatalf("%d updates, want 3", len(ups))
	}
	for i, want := range []string{"2 nights in a row", "3 nights in a row", "4 nights in a row"} {
		if !strings.Contains(ups[i].Description, want) {
			t.Errorf("update %d: %q lacks %q", i, ups[i].Description, want)
		}
	}
}
