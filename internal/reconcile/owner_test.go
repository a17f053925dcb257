package reconcile_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

// reconcilerAt is the env's reconciler with a clock the test moves.
func (e *env) reconcilerAt(clock *time.Time) *reconcile.Reconciler {
	return reconcile.New(reconcile.Options{
		Client: e.client, Targets: []reconcile.Target{daily}, Store: e.store, Submit: e.rec.submit,
		Log: zerolog.New(zerolog.NewTestWriter(e.t)), Metrics: e.metrics, Now: func() time.Time { return *clock },
	})
}

// TestFailureWithinSettleTimeIsNotRecoveredYet: a failure that ended minutes ago may
// still come over MQTT; it is recovered only after the settle time, and the cursor stays
// below it meanwhile.
func TestFailureWithinSettleTimeIsNotRecoveredYet(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	clock := now
	fresh := e.add("FAILURE", 50*time.Minute) // ended 44 minutes after its trigger: 6 minutes ago
	r := e.reconcilerAt(&clock)
	if got := e.round(r); len(got) != 0 {
		t.Fatalf("submitted %v within the settle time", ids(got))
	}
	if cur, ok, _ := e.store.Cursor(context.Background(), daily.Tenant, daily.Pipeline); ok && cur >= fresh.ID {
		t.Fatalf("cursor %d passed the settling failure %d", cur, fresh.ID)
	}
	clock = clock.Add(5 * time.Minute)
	got := e.round(r)
	if len(got) != 1 || got[0].ID != fresh.UUID+"-FAILURE" || !got[0].Recovered {
		t.Fatalf("after the settle time: submitted %v", ids(got))
	}
}

// TestReportInFlightElsewhereIsDeferred: Submit says the MQTT path holds the report; the
// round is not an error, nothing is marked, and once the MQTT copy settled (marked seen)
// the next round submits nothing and moves the cursor past it.
func TestReportInFlightElsewhereIsDeferred(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	bs := e.add("FAILURE", 2*time.Hour)
	id := bs.UUID + "-FAILURE"
	var offered int
	r := reconcile.New(reconcile.Options{
		Client: e.client, Targets: []reconcile.Target{daily}, Store: e.store, Now: func() time.Time { return now },
		Log: zerolog.New(zerolog.NewTestWriter(t)), Metrics: e.metrics,
		Submit: func(_ context.Context, ev *zuul.Event) error {
			offered++
			return fmt.Errorf("%w: report in flight on the MQTT path", reconcile.ErrDeferred)
		},
	})
	if err := r.Round(context.Background()); err != nil {
		t.Fatalf("a deferred report made the round fail: %v", err)
	}
	if seen, _ := e.store.Seen(context.Background(), id); seen || offered != 1 {
		t.Fatalf("seen %v after a deferral, offered %d", seen, offered)
	}
	if v := metric(t, e, "zuul_bridge_reconcile_errors_total"); v != 0 {
		t.Errorf("errors_total = %v", v)
	}
	e.store.MarkSeen(context.Background(), id) // the MQTT copy settled
	if err := r.Round(context.Background()); err != nil || offered != 1 {
		t.Fatalf("next round: %v, offered %d times", err, offered)
	}
	if cur, _, _ := e.store.Cursor(context.Background(), daily.Tenant, daily.Pipeline); cur != bs.ID {
		t.Errorf("cursor %d, want %d", cur, bs.ID)
	}
}

// TestLongBacklogIsProcessedPageByPage: more buildsets than a listing keeps in memory are
// all submitted, oldest first; the pages are read again one at a time instead of held.
func TestLongBacklogIsProcessedPageByPage(t *testing.T) {
	const n = 700
	e := newEnv(t, zuulwebfake.Options{})
	for i := range n {
		e.add("SUCCESS", 20*time.Hour-time.Duration(i)*time.Minute)
	}
	got := e.round(e.reconciler())
	if len(got) != n {
		t.Fatalf("submitted %d, want %d", len(got), n)
	}
	if !slices.IsSortedFunc(got, func(a, b *zuul.Event) int { return a.TriggerTime.Compare(b.TriggerTime) }) {
		t.Error("not submitted oldest first")
	}
	const pages = n / 50 // full pages; listing ends with an empty one
	if lists := e.fake.CountRequests("/buildsets"); lists != 2*pages+1 {
		t.Errorf("%d list requests, want %d: each of the %d pages listed, then read again for processing", lists, 2*pages+1, pages)
	}
}
