package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

var now = time.Date(2024, 11, 28, 12, 0, 0, 0, time.UTC)

var daily = reconcile.Target{Tenant: "scs", Pipeline: "periodic-daily"}

// recorder is the Submit of the tests: it records events and can fail on demand.
type recorder struct {
	mu     sync.Mutex
	events []*zuul.Event
	fail   map[string]int // Event.ID -> failures left
	// deadLetter: Event.IDs that settle only through a dead letter (ErrNotApplied).
	deadLetter map[string]bool
}

func (r *recorder) submit(_ context.Context, ev *zuul.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[ev.ID] > 0 {
		r.fail[ev.ID]--
		return errors.New("sink unavailable")
	}
	if r.deadLetter[ev.ID] {
		r.events = append(r.events, ev)
		return fmt.Errorf("%w: a sink refused it for good", reconcile.ErrNotApplied)
	}
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) take() []*zuul.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

type env struct {
	t       *testing.T
	fake    *zuulwebfake.Server
	client  *zuulweb.Client
	store   reconcile.Store
	rec     *recorder
	reg     *prometheus.Registry
	metrics *reconcile.Metrics
}

func newEnv(t *testing.T, o zuulwebfake.Options) *env {
	t.Helper()
	f := zuulwebfake.New(o)
	t.Cleanup(f.Close)
	f.AddTenant("scs", "periodic-daily")
	c, err := zuulweb.New(zuulweb.Options{BaseURL: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	store, err := kvstore.NewSeen(t.Context(), natstest.JetStream(t), "rec")
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, fake: f, client: c, store: store,
		rec: &recorder{fail: map[string]int{}, deadLetter: map[string]bool{}}, reg: reg, metrics: reconcile.NewMetrics(reg)}
}

// reconciler builds a fresh Reconciler on the env's store, as a restarted process would.
func (e *env) reconciler() *reconcile.Reconciler {
	return reconcile.New(reconcile.Options{
		Client: e.client, Targets: []reconcile.Target{daily}, Store: e.store, Submit: e.rec.submit,
		Log: zerolog.New(zerolog.NewTestWriter(e.t)), Metrics: e.metrics, Now: func() time.Time { return now },
	})
}

// add stores a periodic-daily buildset triggered ago before now; result "" is running.
func (e *env) add(result string, ago time.Duration) zuulwebfake.Buildset {
	at := now.Add(-ago)
	bs := zuulwebfake.Buildset{
		Pipeline: "periodic-daily", Result: result, EventTime: at, FirstBuildStart: at.Add(38 * time.Second),
		Refs: []zuulwebfake.Ref{zuulwebfake.BranchRef("SovereignCloudStack/standards", "main")},
		Builds: []zuulwebfake.Build{
			{JobName: "scs-check-iaas", Result: "SUCCESS", Voting: true, Start: at, End: at.Add(10 * time.Minute)},
			{JobName: "scs-check-kaas", Voting: true, Start: at},
		},
	}
	if result != "" {
		finish(&bs, result)
	}
	return e.fake.Add("scs", bs)
}

// finish gives a buildset its result, as Zuul's SQL reporter does after the MQTT report.
func finish(bs *zuulwebfake.Buildset, result string) {
	bs.Result = result
	bs.Message = map[bool]string{true: "Build succeeded.", false: "Build failed."}[result == "SUCCESS"]
	bs.LastBuildEnd = bs.EventTime.Add(44 * time.Minute)
	kaas := "SUCCESS"
	if result != "SUCCESS" {
		kaas = "FAILURE"
	}
	bs.Builds[1].Result, bs.Builds[1].End = kaas, bs.LastBuildEnd
}

func (e *env) round(r *reconcile.Reconciler) []*zuul.Event {
	e.t.Helper()
	if err := r.Round(context.Background()); err != nil {
		e.t.Fatalf("Round: %v", err)
	}
	return e.rec.take()
}

func ids(evs []*zuul.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// metric sums the series of a metric family in the env's registry.
func metric(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
