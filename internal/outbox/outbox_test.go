package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func connect(t *testing.T, js bool) *nats.Conn {
	t.Helper()
	ns := natstest.Start(t, js)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func open(t *testing.T, nc *nats.Conn, cfg outbox.Config) *outbox.Outbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	box, err := outbox.Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func event(t *testing.T, id string) *zuul.Event {
	t.Helper()
	ev, err := zuul.Decode(samples.Get("periodic-daily_failure_mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev.ID = id
	return ev
}

// recorder is an Apply that records what it applied and fails while fail says so.
type recorder struct {
	mu      sync.Mutex
	applied []string // route/id
	fail    func(route string, ev *zuul.Event) (bool, error)
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) apply(_ context.Context, route string, ev *zuul.Event) (bool, error) {
	r.mu.Lock()
	f := r.fail
	r.mu.Unlock()
	if f != nil {
		if again, err := f(route, ev); err != nil {
			return again, err
		}
	}
	r.mu.Lock()
	r.applied = append(r.applied, route+"/"+ev.ID)
	r.mu.Unlock()
	return false, nil
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.applied...)
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, box *outbox.Outbox, routes []string, w outbox.WorkerOptions) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { box.Run(ctx, routes, w); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the worker did not stop")
		}
	})
}

func TestOpenWithoutJetStream(t *testing.T) {
	nc := connect(t, false)
	_, err := outbox.Open(context.Background(), nc, outbox.Config{})
	if !errors.Is(err, outbox.ErrNoJetStream) {
		t.Fatalf("Open on a server lacking JetStream: %v, want ErrNoJetStream", err)
	}
}

func TestOpenCreatesAWorkQueueStreamOnce(t *testing.T) {
	nc := connect(t, true)
	open(t, nc, outbox.Config{Stream: "OB"})
	open(t, nc, outbox.Config{Stream: "OB"}) // the second replica binds the existing one
	js, _ := nc.JetStream()
	info, err := js.StreamInfo("OB")
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.Retention != nats.WorkQueuePolicy || c.Storage != nats.FileStorage || len(c.Subjects) != 1 || c.Subjects[0] != "zuul-bridge.outbox.>" {
		t.Fatalf("stream config %+v", c)
	}
}

// An existing stream the outbox cannot work with is refused with the reason: one that
// keeps what is acknowledged, and one that does not take the items' subjects. A broader
// work-queue stream that takes them is used.
func TestOpenRefusesAStreamItCannotUse(t *testing.T) {
	nc := connect(t, true)
	js, _ := nc.JetStream()
	for name, sc := range map[string]*nats.StreamConfig{
		"LIMITS": {Name: "LIMITS", Subjects: []string{"zuul-bridge.outbox.>"}},
		"OTHER":  {Name: "OTHER", Subjects: []string{"elsewhere.>"}, Retention: nats.WorkQueuePolicy},
		"BROAD":  {Name: "BROAD", Subjects: []string{"bridge-wide.>"}, Retention: nats.WorkQueuePolicy},
	} {
		if _, err := js.AddStream(sc); err != nil {
			t.Fatal(name, err)
		}
	}
	ctx := context.Background()
	if _, err := outbox.Open(ctx, nc, outbox.Config{Stream: "LIMITS"}); err == nil || !strings.Contains(err.Error(), "work-queue") {
		t.Errorf("a limits stream: %v, want refused for its retention", err)
	}
	if _, err := outbox.Open(ctx, nc, outbox.Config{Stream: "OTHER"}); err == nil || !strings.Contains(err.Error(), "does not take the subjects zuul-bridge.outbox.>") {
		t.Errorf("a stream of other subjects: %v, want refused for its subjects", err)
	}
	if _, err := outbox.Open(ctx, nc, outbox.Config{Stream: "BROAD", Subject: "bridge-wide.outbox"}); err != nil {
		t.Errorf("a work-queue stream whose subjects cover the items': %v", err)
	}
}

// TestItemsAppliedInOrderAndRemoved: what is appended comes out per route in order, as
// the same event, and is gone from the stream once applied; an append of the same report
// twice is stored once.
func TestItemsAppliedInOrderAndRemoved(t *testing.T) {
	nc := connect(t, true)
	box := open(t, nc, outbox.Config{})
	ctx := context.Background()
	var want []string
	for i := range 5 {
		ev := event(t, fmt.Sprintf("r%d", i))
		if retry, err := box.Sink("nightly").Send(ctx, ev); err != nil {
			t.Fatal(retry, err)
		}
		want = append(want, "nightly/"+ev.ID)
	}
	if _, err := box.Sink("nightly").Send(ctx, event(t, "r0")); err != nil { // a redelivered report
		t.Fatal(err)
	}
	if n, oldest, err := box.Stats(ctx); err != nil || n != 5 || oldest.IsZero() {
		t.Fatalf("stats %d %v %v, want 5 items", n, oldest, err)
	}
	rec := newRecorder()
	var got *zuul.Event
	var mu sync.Mutex
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{Apply: func(ctx context.Context, route string, ev *zuul.Event) (bool, error) {
		mu.Lock()
		if got == nil {
			got = ev
		}
		mu.Unlock()
		return rec.apply(ctx, route, ev)
	}, Log: zerolog.Nop()})
	waitFor(t, 10*time.Second, "every item applied", func() bool { return len(rec.list()) == 5 })
	if !reflect.DeepEqual(rec.list(), want) {
		t.Fatalf("applied %v, want %v", rec.list(), want)
	}
	orig := event(t, "r0")
	orig.Raw = nil
	mu.Lock()
	if !reflect.DeepEqual(got, orig) {
		t.Errorf("the stored event differs from the appended one:\n%+v\n%+v", got, orig)
	}
	mu.Unlock()
	waitFor(t, 10*time.Second, "the stream empty", func() bool {
		n, _, err := box.Stats(ctx)
		return err == nil && n == 0
	})
}

// TestRetriedInPlaceThenDeadLettered: a retryable failure is retried with backoff until
// the retry window is over, then dead-lettered with the reason and removed; a permanent
// failure at once; the next item goes on.
func TestRetriedInPlaceThenDeadLettered(t *testing.T) {
	nc := connect(t, true)
	box := open(t, nc, outbox.Config{})
	ctx := context.Background()
	for _, id := range []string{"flaky", "bad", "good"} {
		if _, err := box.Sink("nightly").Send(ctx, event(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	var flakyCalls int
	rec.fail = func(_ string, ev *zuul.Event) (bool, error) {
		switch ev.ID {
		case "flaky":
			flakyCalls++
			return true, errors.New("503 unavailable")
		case "bad":
			return false, errors.New("400 bad request")
		}
		return false, nil
	}
	var mu sync.Mutex
	var dead []delivery.DeadLetter
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{
		Apply:       rec.apply,
		RetryWindow: 500 * time.Millisecond,
		Backoff:     retryBackoff(),
		DeadLetter: func(_ context.Context, dl delivery.DeadLetter) error {
			mu.Lock()
			dead = append(dead, dl)
			mu.Unlock()
			return nil
		},
		Log: zerolog.Nop(),
	})
	waitFor(t, 10*time.Second, "the good item applied", func() bool { return len(rec.list()) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(dead) != 2 || dead[0].ID != "flaky" || dead[1].ID != "bad" {
		t.Fatalf("dead letters %+v", dead)
	}
	if r := dead[0].Reason; flakyCalls < 2 || !strings.Contains(r, "retry window of 500ms passed") || !strings.Contains(r, "503") {
		t.Errorf("flaky: %d calls, reason %q", flakyCalls, r)
	}
	if r := dead[1].Reason; !strings.Contains(r, "failed for good") || !strings.Contains(r, "400") || dead[1].Route != "nightly" || dead[1].Sink != "statuspage" {
		t.Errorf("bad: %+v", dead[1])
	}
}

// TestRouteNotReadyHoldsOnlyItself: items of a route that is not ready stay stored while
// another route's items are applied; once it is ready they are applied in order.
func TestRouteNotReadyHoldsOnlyItself(t *testing.T) {
	nc := connect(t, true)
	box := open(t, nc, outbox.Config{})
	ctx := context.Background()
	for i := range 3 {
		for _, route := range []string{"typo", "nightly"} {
			if _, err := box.Sink(route).Send(ctx, event(t, fmt.Sprintf("%s%d", route, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ready sync.Map
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	m := outbox.NewMetrics(reg)
	run(t, box, []string{"typo", "nightly"}, outbox.WorkerOptions{
		Apply: rec.apply,
		Ready: func(route string) error {
			if _, ok := ready.Load(route); ok || route == "nightly" {
				return nil
			}
			return errors.New("no component named Zuull")
		},
		DeferDelay: 200 * time.Millisecond,
		Metrics:    m,
		Log:        zerolog.Nop(),
	})
	waitFor(t, 10*time.Second, "the ready route's items", func() bool { return len(rec.list()) == 3 })
	if n, _, _ := box.Stats(ctx); n != 3 {
		t.Fatalf("%d items stored, want the 3 of the route that is not ready", n)
	}
	waitFor(t, 10*time.Second, "an item of the route that is not ready deferred", func() bool {
		return counterValue(t, reg, "zuul_bridge_outbox_items_total", map[string]string{"route": "typo", "outcome": "deferred"}) >= 1
	})
	ready.Store("typo", true)
	waitFor(t, 10*time.Second, "the held items", func() bool { return len(rec.list()) == 6 })
	if got := rec.list()[3:]; !reflect.DeepEqual(got, []string{"typo/typo0", "typo/typo1", "typo/typo2"}) {
		t.Fatalf("held items applied as %v", got)
	}
	if n := counterValue(t, reg, "zuul_bridge_outbox_items_total", map[string]string{"route": "typo", "outcome": "deferred"}); n < 1 {
		t.Errorf("deferred items counted %v, want at least 1", n)
	}
}

// counterValue reads one series of a counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestCrashedWorkerItemComesBack: an item taken by a worker that disappears without
// acknowledging it is applied by another after the ack wait; a worker that is alive keeps
// its item past the ack wait.
func TestCrashedWorkerItemComesBack(t *testing.T) {
	nc := connect(t, true)
	cfg := outbox.Config{AckWait: 600 * time.Millisecond}
	box := open(t, nc, cfg)
	ctx := context.Background()
	if _, err := box.Sink("nightly").Send(ctx, event(t, "one")); err != nil {
		t.Fatal(err)
	}
	// Worker 1 holds the item (keeping it alive) for longer than the ack wait, then "dies"
	// (its connection is closed without an ack).
	nc1, err := nats.Connect(nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	box1 := open(t, nc1, cfg)
	taken := make(chan struct{})
	release := make(chan struct{})
	ctx1, cancel1 := context.WithCancel(ctx)
	go box1.Run(ctx1, []string{"nightly"}, outbox.WorkerOptions{Apply: func(ctx context.Context, _ string, _ *zuul.Event) (bool, error) {
		close(taken)
		<-release
		return true, errors.New("never applied")
	}, Log: zerolog.Nop()})
	<-taken
	rec := newRecorder()
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{Apply: rec.apply, Log: zerolog.Nop()})
	time.Sleep(3 * cfg.AckWait) // worker 1 is alive: the item must stay with it
	if n := len(rec.list()); n != 0 {
		t.Fatalf("the item was applied by another worker while worker 1 held it")
	}
	nc1.Close() // crash: no ack, no nak, no more "in progress"
	close(release)
	cancel1()
	waitFor(t, 10*time.Second, "the item applied by the other worker", func() bool { return len(rec.list()) == 1 })
}

func retryBackoff() retry.Backoff {
	return retry.Backoff{Min: 50 * time.Millisecond, Max: 100 * time.Millisecond}
}

// logLines hands each log line to the test as it is written; past its buffer it drops
// them rather than block the worker.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}

// Items of a route no longer in the rules are counted by route, and the worker names them
// at start with the command that removes them; the routes it runs are not orphans.
func TestOrphanedRouteNamedAtStart(t *testing.T) {
	nc := connect(t, true)
	box := open(t, nc, outbox.Config{})
	ctx := context.Background()
	for i, route := range []string{"retired", "retired", "nightly"} {
		if _, err := box.Sink(route).Send(ctx, event(t, fmt.Sprintf("o%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	orphans, err := box.Orphans(ctx, []string{"nightly"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(orphans, map[string]uint64{"retired": 2}) {
		t.Errorf("orphans %v, want retired: 2", orphans)
	}
	lines := make(logLines, 100)
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{Apply: newRecorder().apply, Log: zerolog.New(lines)})
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, "not in the rules") {
				for _, want := range []string{`"route":"retired"`, `"items":2`, `nats stream purge ZUUL_BRIDGE_OUTBOX --subject zuul-bridge.outbox.retired`} {
					if !strings.Contains(l, want) {
						t.Errorf("warning lacks %s: %s", want, l)
					}
				}
				return
			}
		case <-deadline:
			t.Fatal("no warning about the retired route's items")
		}
	}
}

// TestDeadLetterRefusedForGoodDoesNotStall (issue 24.3): the dead-letter subject is denied
// to the bridge's NATS user, so recording a poison item's dead letter fails for good
// (natspub reports the permission violation as delivery.Permanent). The item is dropped
// with a log line and a count, and the items behind it are applied.
func TestDeadLetterRefusedForGoodDoesNotStall(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
		Users: []*server.User{{Username: "bridge", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"dead.>"}}}}}}
	s := natstest.StartWith(t, opts)
	nc := natstest.Connect(t, s.ClientURL(), nats.UserInfo("bridge", "pw"))
	box := open(t, nc, outbox.Config{})
	ctx := context.Background()
	for _, id := range []string{"poison", "good1", "good2"} {
		if _, err := box.Sink("nightly").Send(ctx, event(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := natspub.NewPublisher(nc, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	rec.fail = func(_ string, ev *zuul.Event) (bool, error) {
		if ev.ID == "poison" {
			return false, errors.New("400 bad request")
		}
		return false, nil
	}
	reg := prometheus.NewRegistry()
	lines := make(logLines, 1000)
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{
		Apply:      rec.apply,
		DeadLetter: pub.DeadLetterer("dead.letters"),
		Backoff:    retryBackoff(),
		Metrics:    outbox.NewMetrics(reg),
		Log:        zerolog.New(lines),
	})
	waitFor(t, 10*time.Second, "both good items applied", func() bool { return len(rec.list()) == 2 })
	if got := rec.list(); !reflect.DeepEqual(got, []string{"nightly/good1", "nightly/good2"}) {
		t.Fatalf("applied %v", got)
	}
	if n := counterValue(t, reg, "zuul_bridge_outbox_dead_letter_failures_total", map[string]string{"route": "nightly"}); n != 1 {
		t.Errorf("dead letters refused for good counted %v, want 1", n)
	}
	waitFor(t, 10*time.Second, "the stream empty", func() bool {
		n, _, err := box.Stats(ctx)
		return err == nil && n == 0
	})
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, "dead letter refused for good") {
				for _, want := range []string{`"route":"nightly"`, `"id":"poison"`, `400 bad request`, `permissions violation`} {
					if !strings.Contains(l, want) {
						t.Errorf("log line lacks %s: %s", want, l)
					}
				}
				return
			}
		default:
			t.Fatal("no error log line about the dropped dead letter")
		}
	}
}
