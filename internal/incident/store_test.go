package incident_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// noMachineText fails the test when a text on the fake status page holds anything but
// the rendered template, or when
// a request broke the API spec.
func noMachineText(t *testing.T, e *env) {
	t.Helper()
	if v := e.fake.Violations(); len(v) > 0 {
		t.Errorf("spec violations: %q", v)
	}
	for _, inc := range e.incidents() {
		texts := []string{inc.DisplayName, inc.Description}
		for _, u := range inc.Updates {
			texts = append(texts, u.DisplayName, u.Description)
		}
		for _, s := range texts {
			for _, bad := range []string{"(ref ", "automatically", "zuul-bridge", routeName, "\n"} {
				if strings.Contains(s, bad) {
					t.Errorf("public text holds %q: %q", bad, s)
				}
			}
		}
	}
}

// The bridge knows its incidents from the store: the texts carry no
// reference, and a restart finds the open incident, its run count and the reports
// already applied (one GET for the incident, no GET of its updates).
func TestStoreRestartWithoutReference(t *testing.T) {
	e := newStoreEnv(t, nil)
	e.send(fail(1, hours(0)))
	e.send(fail(2, hours(24)))

	e.fake.ResetRequests()
	e.restart()
	var calls []string
	for _, r := range e.fake.Requests() {
		calls = append(calls, r.Method+" "+r.Path)
	}
	if len(calls) != 6 || !strings.HasPrefix(calls[5], "GET /incidents/") || strings.HasSuffix(calls[5], "/updates") {
		t.Errorf("Start calls: %q, want 4 catalogue, the list and one GET of the open incident", calls)
	}
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
	eq(t, "description", incs[0].Description, "Nightly checks of SovereignCloudStack/k8s-cluster-api-provider on branch main "+
		"started failing on 21 Nov 2026 at 10:00 UTC: e2e failed. Details: https://zuul.scs.community/t/scs/buildset/bs1")
	noMachineText(t, e)

	e.restart()
	eq(t, "no open incident after the end", e.m.OpenIncidents(), 0)
	e.send(fail(5, hours(96)))
	eq(t, "a failure after a bridge-resolved incident opens a new one", len(e.incidents()), 2)
	noMachineText(t, e)
}

// People win also when only the store knows the incidents: an incident ended by hand is
// not reopened after a restart; a success lifts that.
func TestStoreHandEndedAcrossRestart(t *testing.T) {
	e := newStoreEnv(t, nil)
	e.send(fail(1, hours(0)))
	e.fake.EndIncident(e.incidents()[0].ID, hours(1))
	e.restart()
	eq(t, "open incidents after restart", e.m.OpenIncidents(), 0)
	eqCalls(t, "suppressed failure", e.calls(func() { e.send(fail(2, hours(24))) }))
	eq(t, "incidents", len(e.incidents()), 1)
	eq(t, "updates on the hand-ended incident", len(e.incidents()[0].Updates), 0)
	e.send(ok(3, hours(48)))
	e.send(fail(4, hours(72)))
	eq(t, "new outage, new incident", len(e.incidents()), 2)
	noMachineText(t, e)
}

// The closing PATCH went through but its answer was lost, and the bridge restarted: the
// store's closing entry tells that the bridge ended it, so the next failure is a new
// outage and not a suppressed one.
func TestStoreLostEndAnswerAcrossRestart(t *testing.T) {
	e := newStoreEnv(t, nil)
	e.send(fail(1, hours(0)))
	e.fake.SetFault(loseAnswerOnce("PATCH", ""))
	if retry, err := e.sink.Send(t.Context(), ok(2, hours(24))); !retry || err == nil {
		t.Fatalf("lost PATCH answer: retry=%v err=%v", retry, err)
	}
	e.fake.SetFault(nil)
	e.restart()
	e.send(fail(3, hours(48)))
	incs := e.incidents()
	eq(t, "incidents", len(incs), 2)
	_, _, _, sup := e.obs.get()
	eq(t, "suppressed", sup["hand-ended"], 0)
	noMachineText(t, e)
}

// A create whose answer was lost, then a restart: the claim in the store recorded the
// title and beganAt, so the redelivered report finds the incident instead of opening a
// second one.
func TestStoreCreateAnswerLostAcrossRestart(t *testing.T) {
	e := newStoreEnv(t, nil)
	e.fake.SetFault(loseAnswerOnce("POST", "/incidents"))
	if retry, err := e.sink.Send(t.Context(), fail(1, hours(0))); !retry || err == nil {
		t.Fatalf("lost answer: retry=%v err=%v", retry, err)
	}
	e.fake.SetFault(nil)
	e.restart()
	e.send(fail(1, hours(0)))
	eq(t, "incidents", len(e.incidents()), 1)
	e.send(fail(2, hours(24)))
	eq(t, "the found incident is updated", len(e.incidents()[0].Updates), 1)
	eq(t, "open incidents", e.m.OpenIncidents(), 1)
	if v := e.fake.Violations(); len(v) > 0 {
		t.Errorf("spec violations: %q", v)
	}
	noMachineText(t, e)
}

// The quiet period runs on after a restart: the store keeps the last failure.
func TestStoreQuietPeriodAfterRestart(t *testing.T) {
	e := newStoreEnv(t, func(c *incident.RouteConfig) { c.QuietPeriod = 36 * time.Hour })
	e.send(fail(1, hours(0)))
	e.send(fail(2, hours(24)))
	e.restart()
	e.clock.Set(hours(24 + 35))
	if err := e.m.ResolveQuiet(t.Context()); err != nil {
		t.Fatal(err)
	}
	eq(t, "open before the quiet period is over", e.incidents()[0].EndedAt == nil, true)
	e.clock.Set(hours(24 + 36))
	if err := e.m.ResolveQuiet(t.Context()); err != nil {
		t.Fatal(err)
	}
	inc := e.incidents()[0]
	eq(t, "ended at the end of the quiet period", inc.EndedAt != nil && inc.EndedAt.Equal(hours(60)), true)
	if len(inc.Updates) != 2 || inc.Updates[1].Description != "No failure was reported for 36 hours." {
		t.Errorf("updates: %+v", inc.Updates)
	}
	noMachineText(t, e)
}

// A resolve stopped between its closing update and the PATCH (the PATCH failed), then a
// restart: the retry finds the closing update and only ends the incident.
func TestStoreResolveRetryAfterRestartPostsOneClosingUpdate(t *testing.T) {
	e := newStoreEnv(t, nil)
	e.send(fail(1, hours(0)))
	e.fake.SetFault(faultOn("PATCH", "", statuspagefake.Fault{Status: 503}))
	if retry, err := e.sink.Send(t.Context(), ok(2, hours(24))); !retry || err == nil {
		t.Fatalf("PATCH 503: retry=%v err=%v", retry, err)
	}
	e.fake.SetFault(nil)
	e.restart()
	e.send(ok(2, hours(24)))
	inc := e.incidents()[0]
	eq(t, "ended", inc.EndedAt != nil, true)
	eq(t, "one closing update", len(inc.Updates), 1)
	noMachineText(t, e)
}

// The bridge stopped after posting an update but before writing the entry: after the
// restart the redelivered report finds its update instead of posting it again, and the
// count goes on from it.
func TestStoreUpdateNotInEntryFoundAfterRestart(t *testing.T) {
	e := newStoreEnv(t, nil)
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := kvstore.NewCAS(t.Context(), nc, kvstore.CASOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.send(fail(1, hours(0)))
	keys, err := store.Keys(t.Context())
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %q, %v", keys, err)
	}
	before, _, err := store.Get(t.Context(), keys[0])
	if err != nil {
		t.Fatal(err)
	}
	e.send(fail(2, hours(24)))
	_, rev, _ := store.Get(t.Context(), keys[0])
	if _, err := store.Update(t.Context(), keys[0], before, rev); err != nil { // as if never written
		t.Fatal(err)
	}
	e.restart()
	eqCalls(t, "redelivered update", e.calls(func() { e.send(fail(2, hours(24))) }), "GET /incidents/{id}/updates")
	e.send(fail(3, hours(48)))
	ups := e.incidents()[0].Updates
	if len(ups) != 2 || !strings.Contains(ups[1].Description, "3 nights in a row") {
		t.Errorf("updates: %+v, want 2, the second counting 3 nights", ups)
	}
}
