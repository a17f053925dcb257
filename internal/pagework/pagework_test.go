package pagework_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/features"
	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/pagework"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// rig is one process's status page side against an embedded NATS server and the fake
// status page, with routes named after their component.
type rig struct {
	fake  *statuspagefake.Fake
	reg   *prometheus.Registry
	feats *features.Set
	work  *pagework.Work
	m     *incident.Manager
	sinks map[string]delivery.Sink

	mu   sync.Mutex
	dead []delivery.DeadLetter
}

func newRig(t *testing.T, jetStream bool, components ...string) *rig {
	t.Helper()
	r := &rig{fake: statuspagefake.New(t, statuspagefake.Options{}), reg: prometheus.NewRegistry(), sinks: map[string]delivery.Sink{}}
	log := zerolog.New(zerolog.NewTestWriter(t))
	c, err := statuspage.NewClient(statuspage.ClientOptions{BaseURL: r.fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	m := incident.NewManager(incident.ManagerOptions{Client: c, Log: log, BridgeID: "test", ReplicaID: "pod-0"})
	r.m = m
	r.feats = features.New(log, r.reg)
	r.work = pagework.New(pagework.Options{
		KVBucket: "incidents", RetryWindow: time.Hour, AttemptTimeout: 10 * time.Second,
		StartupBackoff: retry.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		NATS:           natstest.Connect(t, natstest.Start(t, jetStream).ClientURL()), Manager: m,
		DeadLetter: func(_ context.Context, d delivery.DeadLetter) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.dead = append(r.dead, d)
			return nil
		},
		Features: r.feats, Registerer: r.reg, Log: log,
	})
	for _, comp := range components {
		cfg := incident.DefaultRouteConfig()
		cfg.Component = comp
		s, err := m.AddRoute(comp, cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.sinks[comp] = r.work.Target(comp, s)
	}
	return r
}

// run runs the work until the test ends, and waits for it to return then.
func (r *rig) run(t *testing.T) (done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() { r.work.Run(ctx); close(ch) }()
	t.Cleanup(func() { cancel(); <-ch })
	return ch
}

func failure(project string) *zuul.Event {
	return &zuul.Event{ID: project + "-bs1-FAILURE", Timestamp: time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), Tenant: "scs",
		Pipeline: "periodic-daily", Project: project, Branch: "main", Action: "failure", Result: "FAILURE",
		Outcome: zuul.OutcomeFailure, BuildsetUUID: "bs1",
		Builds: []zuul.Build{{JobName: "e2e", Voting: true, Result: "FAILURE"}}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A report sent before the outbox is open is retried (not lost, not applied); once Run
// opened the stream it is stored, and the worker opens its incident. /readyz notes say what
// the side waits for and are empty once it runs.
func TestStoresThenApplies(t *testing.T) {
	r := newRig(t, true, "Zuul")
	if retry, err := r.sinks["Zuul"].Send(t.Context(), failure("o/a")); !retry || err == nil {
		t.Fatalf("before Run: retry=%v err=%v, want a retryable error", retry, err)
	}
	if notes := r.work.Notes(); len(notes) != 2 {
		t.Errorf("notes before Run: %q, want the outbox and the catalogue", notes)
	}
	r.run(t)
	waitFor(t, "the outbox open", func() bool {
		retry, err := r.sinks["Zuul"].Send(t.Context(), failure("o/a"))
		return err == nil && !retry
	})
	waitFor(t, "the incident", func() bool { return len(r.fake.Incidents()) == 1 })
	waitFor(t, "no notes", func() bool { return len(r.work.Notes()) == 0 })
	if n := len(r.feats.Notes()); n != 0 {
		t.Errorf("features notes %q", r.feats.Notes())
	}
}

// A route naming a component the status page lacks is reported (gauge, note) and only its
// work waits; the other route's report opens its incident.
func TestUnknownNamesHoldOnlyTheirRoute(t *testing.T) {
	r := newRig(t, true, "Zuul", "Zuull")
	r.run(t)
	waitFor(t, "the unknown name reported", func() bool {
		return testutil.ToFloat64(mustGauge(t, r.reg, "zuul_bridge_statuspage_unknown_names", "Zuull")) == 1
	})
	for _, route := range []string{"Zuull", "Zuul"} {
		waitFor(t, "stored on "+route, func() bool {
			_, err := r.sinks[route].Send(t.Context(), failure("o/"+route))
			return err == nil
		})
	}
	waitFor(t, "the good route's incident", func() bool { return len(r.fake.Incidents()) == 1 })
	notes := strings.Join(r.work.Notes(), "\n")
	if !strings.Contains(notes, "route Zuull: unknown names") || !strings.Contains(notes, `no component named "Zuull"`) {
		t.Errorf("notes: %s", notes)
	}
}

// On a server lacking JetStream the status page side does not start: Run returns, the
// features set says why (note, gauge), and a report is refused for good at once (the
// delivery dead-letters it with the reason) instead of waiting.
func TestNoJetStream(t *testing.T) {
	r := newRig(t, false, "Zuul")
	done := r.run(t)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	retry, err := r.sinks["Zuul"].Send(t.Context(), failure("o/a"))
	if retry || err == nil || !strings.Contains(err.Error(), "needs JetStream") {
		t.Fatalf("Send: retry=%v err=%v, want a permanent error naming JetStream", retry, err)
	}
	if notes := r.feats.Notes(); len(notes) != 1 || !strings.Contains(notes[0], pagework.Feature+" needs JetStream") {
		t.Errorf("features notes %q", notes)
	}
	if v := testutil.ToFloat64(mustGauge(t, r.reg, "zuul_bridge_feature_unavailable", pagework.Feature)); v != 1 {
		t.Errorf("gauge %v, want 1", v)
	}
	if notes := r.work.Notes(); len(notes) != 1 || !strings.Contains(notes[0], "catalogue not read") {
		t.Errorf("work notes %q: the outbox is not waited for any more", notes)
	}
	if len(r.fake.Incidents()) != 0 {
		t.Error("an incident without JetStream")
	}
}

// mustGauge finds the gauge name{label=value} in reg.
func mustGauge(t *testing.T, reg *prometheus.Registry, name, value string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == value {
					return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, m.GetGauge().GetValue)
				}
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return -1 })
}
