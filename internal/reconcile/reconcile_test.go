package reconcile_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

func TestRoundRecoversFailuresResolvesAndSkips(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	e.add("FAILURE", 30*time.Hour) // before the lookback window of a first start
	success := e.add("SUCCESS", 20*time.Hour)
	e.add("DEQUEUED", 10*time.Hour)
	lost := e.add("FAILURE", 5*time.Hour)
	viaMQTT := e.add("FAILURE", 4*time.Hour)
	running := e.add("", time.Hour) // MQTT may already have its report; SQL not yet
	if err := e.store.MarkSeen(context.Background(), viaMQTT.UUID+"-FAILURE"); err != nil {
		t.Fatal(err)
	}
	r := e.reconciler()

	got := e.round(r)
	if want := []string{success.UUID + "-SUCCESS", lost.UUID + "-FAILURE"}; !slices.Equal(ids(got), want) {
		t.Fatalf("submitted %v, want %v (oldest first)", ids(got), want)
	}
	if ev := got[0]; ev.Recovered || ev.Outcome != zuul.OutcomeSuccess || ev.Source != zuul.SourceREST {
		t.Errorf("success: recovered=%v outcome=%s source=%s", ev.Recovered, ev.Outcome, ev.Source)
	}
	if ev := got[1]; !ev.Recovered || ev.Outcome != zuul.OutcomeFailure || len(ev.FailedBuilds()) != 1 ||
		ev.FailedBuilds()[0].JobName != "scs-check-kaas" || ev.Tenant != "scs" || ev.Project != "SovereignCloudStack/standards" {
		t.Errorf("recovered failure: %+v", ev)
	}
	if cur, ok, _ := e.store.Cursor(context.Background(), daily.Tenant, daily.Pipeline); !ok || cur != viaMQTT.ID {
		t.Errorf("cursor %d (set %v), want %d: held below the running buildset", cur, ok, viaMQTT.ID)
	}
	if n := e.fake.CountRequests("/buildset/" + viaMQTT.UUID); n != 0 {
		t.Errorf("detail of a report seen over MQTT fetched %d times", n)
	}

	// Second round: nothing new, nothing submitted.
	if got := e.round(r); len(got) != 0 {
		t.Fatalf("second round submitted %v", ids(got))
	}

	// The null result turns final: the next round submits it, once.
	e.fake.Update("scs", running.UUID, func(bs *zuulwebfake.Buildset) { finish(bs, "FAILURE") })
	got = e.round(r)
	if len(got) != 1 || got[0].ID != running.UUID+"-FAILURE" || !got[0].Recovered {
		t.Fatalf("after the result was written: submitted %v", ids(got))
	}
	if got := e.round(r); len(got) != 0 {
		t.Fatalf("fourth round submitted %v", ids(got))
	}
	if cur, _, _ := e.store.Cursor(context.Background(), daily.Tenant, daily.Pipeline); cur != running.ID {
		t.Errorf("cursor %d, want %d", cur, running.ID)
	}

	if v := metric(t, e, "zuul_bridge_reconcile_recovered_total"); v != 2 {
		t.Errorf("recovered_total = %v, want 2", v)
	}
	n, err := testutil.GatherAndCount(e.reg, "zuul_bridge_reconcile_rounds_total", "zuul_bridge_reconcile_newest_buildset_age_seconds")
	if err != nil || n != 2 {
		t.Errorf("gathered %d series (%v), want rounds and one age", n, err)
	}
	want := `
# HELP zuul_bridge_reconcile_newest_buildset_age_seconds Seconds since the newest completed buildset seen in zuul-web ended (its last build's end, else its trigger time).
# TYPE zuul_bridge_reconcile_newest_buildset_age_seconds gauge
zuul_bridge_reconcile_newest_buildset_age_seconds{pipeline="periodic-daily",tenant="scs"} 960
# HELP zuul_bridge_reconcile_rounds_total Reconcile rounds run (one pass over all targets).
# TYPE zuul_bridge_reconcile_rounds_total counter
zuul_bridge_reconcile_rounds_total 4
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want),
		"zuul_bridge_reconcile_newest_buildset_age_seconds", "zuul_bridge_reconcile_rounds_total"); err != nil {
		t.Error(err) // newest: triggered 1h ago, ended 44 min later: 16 min old
	}
}

func TestRestartSubmitsNothing(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	e.add("SUCCESS", 3*time.Hour)
	e.add("FAILURE", 2*time.Hour)
	if got := e.round(e.reconciler()); len(got) != 2 {
		t.Fatalf("first process submitted %v", ids(got))
	}
	if got := e.round(e.reconciler()); len(got) != 0 {
		t.Fatalf("restarted process submitted %v", ids(got))
	}
}

func TestPagingFirstStartAndCursor(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	for i := range 120 { // 120 buildsets within 20 hours: three pages of 50
		e.add("SUCCESS", 20*time.Hour-time.Duration(i)*10*time.Minute)
	}
	got := e.round(e.reconciler())
	if len(got) != 120 {
		t.Fatalf("submitted %d, want 120", len(got))
	}
	if !slices.IsSortedFunc(got, func(a, b *zuul.Event) int { return a.TriggerTime.Compare(b.TriggerTime) }) {
		t.Error("not submitted oldest first")
	}
	if n := e.fake.CountRequests("idx_max="); n != 2 {
		t.Errorf("%d follow-up pages, want 2", n)
	}
	// Later rounds ask only for what is above the cursor.
	newest := e.add("FAILURE", time.Hour) // ended 16 minutes ago: past the settle time
	if got := e.round(e.reconciler()); len(got) != 1 || got[0].BuildsetUUID != newest.UUID {
		t.Fatalf("submitted %v", ids(got))
	}
	reqs := e.fake.Requests()
	if last := reqs[len(reqs)-2]; !strings.Contains(last, "idx_min=") { // list, then detail
		t.Errorf("request %q has no idx_min", last)
	}
}

func TestLookbackBoundsTheFirstStart(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	for i := range 200 { // one a day-hour for 200 hours
		e.add("FAILURE", time.Duration(200-i)*time.Hour)
	}
	got := e.round(e.reconciler())
	if len(got) != 24 { // 24h ago (the edge is within) ... 1h ago
		t.Errorf("submitted %d, want the 24 within 24h", len(got))
	}
	if n := e.fake.CountRequests("/buildsets"); n != 1 {
		t.Errorf("%d list requests, want 1 (the first page already reaches past the window)", n)
	}
}

func TestSubmitErrorKeepsOrderAndRetries(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	a := e.add("FAILURE", 3*time.Hour)
	b := e.add("SUCCESS", 2*time.Hour)
	e.rec.fail[a.UUID+"-FAILURE"] = 1
	r := e.reconciler()
	err := r.Round(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sink unavailable") {
		t.Fatalf("Round: %v, want the submit error", err)
	}
	if got := e.rec.take(); len(got) != 0 {
		t.Fatalf("submitted %v after the older one failed: the success would land before its failure", ids(got))
	}
	if v := metric(t, e, "zuul_bridge_reconcile_errors_total"); v != 1 {
		t.Errorf("errors_total = %v", v)
	}
	got := e.round(r)
	if want := []string{a.UUID + "-FAILURE", b.UUID + "-SUCCESS"}; !slices.Equal(ids(got), want) {
		t.Fatalf("retry round submitted %v, want %v", ids(got), want)
	}
}

func TestZuulWebErrors(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{Tokens: []string{"t"}})
	e.add("FAILURE", time.Hour)
	r := e.reconciler()
	var ae *zuulweb.APIError
	if err := r.Round(context.Background()); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("Round without token: %v, want 401", err)
	}
	if _, ok, _ := e.store.Cursor(context.Background(), daily.Tenant, daily.Pipeline); ok {
		t.Error("cursor set although nothing was read")
	}

	e2 := newEnv(t, zuulwebfake.Options{})
	e2.add("FAILURE", time.Hour)
	e2.fake.FailNext(500)
	r2 := e2.reconciler()
	if err := r2.Round(context.Background()); !errors.As(err, &ae) || !ae.Temporary() {
		t.Fatalf("Round on a 500: %v", err)
	}
	if got := e2.round(r2); len(got) != 1 {
		t.Fatalf("next round submitted %v", ids(got))
	}
}

func TestOldZuulWeb(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{Version: "10.0.0"})
	e.add("FAILURE", time.Hour)
	if got := e.round(e.reconciler()); len(got) != 1 {
		t.Fatalf("submitted %v", ids(got))
	}
}

func TestRunRoundsUntilCancelled(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	e.add("FAILURE", time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	submitted := make(chan struct{}, 1)
	r := reconcile.New(reconcile.Options{Client: e.client, Targets: []reconcile.Target{daily}, Store: e.store,
		Interval: time.Hour, Now: func() time.Time { return now },
		Submit: func(context.Context, *zuul.Event) error { submitted <- struct{}{}; return nil }})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-submitted: // the round at start
	case <-time.After(10 * time.Second):
		t.Fatal("no report submitted within 10s of Run starting")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context being cancelled")
	}
}

// A report whose Submit settled only through a dead letter does not hold the round up (the
// newer one is submitted after it, the cursor moves on), and is not remembered as applied.
func TestDeadLetteredSubmitIsNotRememberedAsApplied(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	poison := e.add("FAILURE", 3*time.Hour)
	next := e.add("FAILURE", 2*time.Hour)
	e.rec.deadLetter[poison.UUID+"-FAILURE"] = true
	if got := e.round(e.reconciler()); len(got) != 2 || got[1].BuildsetUUID != next.UUID {
		t.Fatalf("submitted %v, want the dead-lettered one and the next", ids(got))
	}
	ctx := context.Background()
	if seen, err := e.store.Seen(ctx, poison.UUID+"-FAILURE"); err != nil || seen {
		t.Errorf("dead-lettered report remembered as applied: %v, %v", seen, err)
	}
	if seen, err := e.store.Seen(ctx, next.UUID+"-FAILURE"); err != nil || !seen {
		t.Errorf("applied report not remembered: %v, %v", seen, err)
	}
}
