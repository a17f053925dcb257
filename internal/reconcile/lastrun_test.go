package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/lastrun"
	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

var weekly = reconcile.Target{Tenant: "scs", Pipeline: "periodic-weekly"}

// ranReconciler builds a Reconciler of daily and weekly on the env's store that tells g
// when the pipelines ran, as a (re)started bridge does.
func (e *env) ranReconciler(g *lastrun.Gauge) *reconcile.Reconciler {
	return reconcile.New(reconcile.Options{
		Client: e.client, Targets: []reconcile.Target{daily, weekly}, Store: e.store, Submit: e.rec.submit,
		Log: zerolog.New(zerolog.NewTestWriter(e.t)), Metrics: e.metrics, Now: func() time.Time { return now },
		Ran: g.Observe,
	})
}

func ranAt(t *testing.T, g *lastrun.Gauge, tg reconcile.Target) time.Time {
	t.Helper()
	at, ok := g.Last(tg.Tenant, tg.Pipeline)
	if !ok {
		t.Fatalf("%s: not tracked", tg)
	}
	return at
}

// TestRanSeededFromZuulWebAndAfterRestart: the newest completed buildset of each target
// sets the gauge on the first round, even when it is older than the lookback and even
// when a restart finds nothing above the cursor; a pipeline without any buildset is 0;
// a success that exists only in zuul-web moves it to its end time; DEQUEUED is no run.
func TestRanSeededFromZuulWebAndAfterRestart(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	old := e.add("SUCCESS", 30*time.Hour) // before the lookback of a first start
	e.add("DEQUEUED", 2*time.Hour)
	g := lastrun.New(func() time.Time { return now })
	r := e.ranReconciler(g)
	if got := e.round(r); len(got) != 0 {
		t.Fatalf("submitted %v, want nothing (older than the lookback)", ids(got))
	}
	if got := ranAt(t, g, daily); !got.Equal(old.LastBuildEnd) {
		t.Fatalf("daily: %v, want the end of the 30h old success %v", got, old.LastBuildEnd)
	}
	if age := now.Sub(ranAt(t, g, daily)); age <= 26*time.Hour {
		t.Errorf("daily age %v, want over 26h: it did not run since", age)
	}
	if got := ranAt(t, g, weekly); !got.IsZero() {
		t.Fatalf("weekly without any buildset: %v, want zero (never)", got)
	}

	fresh := e.add("SUCCESS", time.Hour) // exists only in zuul-web
	if got := e.round(r); len(got) != 1 {
		t.Fatalf("submitted %v, want the new success", ids(got))
	}
	if got := ranAt(t, g, daily); !got.Equal(fresh.LastBuildEnd) {
		t.Fatalf("daily after the success: %v, want its end %v", got, fresh.LastBuildEnd)
	}
	seeds := e.fake.CountRequests("complete=true")

	// A restart on the same store: nothing above the cursor, yet the gauge is known at once.
	g2 := lastrun.New(func() time.Time { return now })
	r2 := e.ranReconciler(g2)
	if got := e.round(r2); len(got) != 0 {
		t.Fatalf("restarted process submitted %v", ids(got))
	}
	if got := ranAt(t, g2, daily); !got.Equal(fresh.LastBuildEnd) {
		t.Fatalf("after the restart: %v, want %v", got, fresh.LastBuildEnd)
	}
	e.round(r2)
	if n := e.fake.CountRequests("complete=true") - seeds; n != 2 {
		t.Errorf("%d seed requests after the restart, want one per target, once", n)
	}
}

// TestRanSeedRetriedAfterAnError: a failed seed is tried again on the next round (the
// buildset is older than the lookback: only the seed reads it).
func TestRanSeedRetriedAfterAnError(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	old := e.add("FAILURE", 40*time.Hour)
	g := lastrun.New(func() time.Time { return now })
	r := e.ranReconciler(g)
	e.fake.FailNext(503)
	r.Round(context.Background()) // the seed of daily fails; the passes go on
	if _, ok := g.Last(daily.Tenant, daily.Pipeline); ok {
		t.Fatal("daily tracked although its seed failed")
	}
	e.round(r)
	if got := ranAt(t, g, daily); !got.Equal(old.LastBuildEnd) {
		t.Fatalf("after the retried seed: %v, want %v", got, old.LastBuildEnd)
	}
}
