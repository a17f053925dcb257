package outbox_test

import (
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func send(t *testing.T, box *outbox.Outbox, route string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := box.Sink(route).Send(context.Background(), event(t, id)); err != nil {
			t.Fatal(err)
		}
	}
}

// keyOfID is the incident key of the test items: the report id up to its first "-".
func keyOfID(_ string, ev *zuul.Event) string {
	k, _, _ := strings.Cut(ev.ID, "-")
	return k
}

// TestDeferredItemNotOvertakenByItsKey (issue 27.4 / 28.2): the route is not ready once,
// so the first item of a key is deferred; the next item of the same key must not be
// applied before it (a success applied before the failure it follows would leave the
// incident open). Key is nil here: one key per route.
func TestDeferredItemNotOvertakenByItsKey(t *testing.T) {
	nc := connect(t, true)
	box := open(t, nc, outbox.Config{})
	send(t, box, "nightly", "k-1", "k-2")
	var notReady atomic.Bool
	notReady.Store(true)
	rec := newRecorder()
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{
		Apply: rec.apply,
		Ready: func(string) error {
			if notReady.Swap(false) {
				return errors.New("no component named Zuull")
			}
			return nil
		},
		DeferDelay: 300 * time.Millisecond,
		Log:        zerolog.Nop(),
	})
	waitFor(t, 10*time.Second, "both items applied", func() bool { return len(rec.list()) == 2 })
	if got := rec.list(); !reflect.DeepEqual(got, []string{"nightly/k-1", "nightly/k-2"}) {
		t.Fatalf("applied %v: the deferred item was overtaken by the next of its key", got)
	}
}

// TestBlockedKeyHoldsOnlyItself (issue 24.4a): key A keeps failing (retryable), which
// holds A's later items back, while keys B and C of the same route are applied at once
// and in their order.
func TestBlockedKeyHoldsOnlyItself(t *testing.T) {
	nc := connect(t, true)
	box := open(t, nc, outbox.Config{})
	send(t, box, "nightly", "A-1", "B-1", "A-2", "C-1", "B-2")
	rec := newRecorder()
	var aCalls atomic.Int32
	rec.fail = func(_ string, ev *zuul.Event) (bool, error) {
		if strings.HasPrefix(ev.ID, "A-") {
			aCalls.Add(1)
			return true, errors.New("503 unavailable")
		}
		return false, nil
	}
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{
		Apply:   rec.apply,
		Key:     keyOfID,
		Backoff: retryBackoff(),
		Log:     zerolog.Nop(),
	})
	waitFor(t, 5*time.Second, "the items of B and C applied", func() bool { return len(rec.list()) == 3 })
	time.Sleep(300 * time.Millisecond) // a negative check: room for an item of the blocked key A to be applied wrongly
	got := rec.list()
	if len(got) != 3 || !reflect.DeepEqual(filter(got, "nightly/B-"), []string{"nightly/B-1", "nightly/B-2"}) || !reflect.DeepEqual(filter(got, "nightly/C-"), []string{"nightly/C-1"}) {
		t.Fatalf("applied %v, want B-1, B-2 (in that order) and C-1", got)
	}
	if aCalls.Load() < 2 {
		t.Errorf("A-1 tried %d times, want it retried", aCalls.Load())
	}
	if n := aCalls.Load(); n > 0 && len(filter(got, "nightly/A-")) > 0 {
		t.Errorf("an item of the blocked key was applied: %v", got)
	}
}

func filter(list []string, prefix string) []string {
	var out []string
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// TestShutdownReturnsTheItem (issue 27.5): a worker stopped while it applies an item
// returns it (never acknowledges it): the next worker applies it.
func TestShutdownReturnsTheItem(t *testing.T) {
	nc := connect(t, true)
	box := open(t, nc, outbox.Config{})
	send(t, box, "nightly", "one")
	taken := make(chan struct{})
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan struct{})
	go func() {
		defer close(done1)
		box.Run(ctx1, []string{"nightly"}, outbox.WorkerOptions{Apply: func(ctx context.Context, _ string, _ *zuul.Event) (bool, error) {
			close(taken)
			<-ctx.Done()
			return true, ctx.Err()
		}, Log: zerolog.Nop()})
	}()
	select {
	case <-taken:
	case <-time.After(10 * time.Second):
		t.Fatal("the first worker did not take the item")
	}
	cancel1()
	select {
	case <-done1:
	case <-time.After(10 * time.Second):
		t.Fatal("the first worker did not stop")
	}
	nc2 := connect2(t, nc)
	rec := newRecorder()
	run(t, open(t, nc2, outbox.Config{}), []string{"nightly"}, outbox.WorkerOptions{Apply: rec.apply, Log: zerolog.Nop()})
	waitFor(t, 10*time.Second, "the returned item applied by the next worker", func() bool { return len(rec.list()) == 1 })
}

func connect2(t *testing.T, nc *nats.Conn, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc2, err := nats.Connect(nc.ConnectedUrl(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc2.Close)
	return nc2
}

// TestClaimConflictRetriedSoon: an error ShortRetry names (another replica works the key)
// is retried on the short backoff, not the general one.
func TestClaimConflictRetriedSoon(t *testing.T) {
	nc := connect(t, true)
	box := open(t, nc, outbox.Config{})
	send(t, box, "nightly", "one")
	busy := errors.New("key busy")
	var calls atomic.Int32
	rec := newRecorder()
	rec.fail = func(string, *zuul.Event) (bool, error) {
		if calls.Add(1) <= 2 {
			return true, busy
		}
		return false, nil
	}
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{
		Apply:        rec.apply,
		Backoff:      retry.Backoff{Min: time.Hour, Max: time.Hour},
		ShortRetry:   func(err error) bool { return errors.Is(err, busy) },
		ShortBackoff: retry.Backoff{Min: 20 * time.Millisecond, Max: 50 * time.Millisecond},
		Log:          zerolog.Nop(),
	})
	waitFor(t, 5*time.Second, "the item applied after two claim conflicts", func() bool { return len(rec.list()) == 1 })
}

// proxy forwards TCP to a NATS server until frozen: then it forwards nothing and closes
// nothing, like a network partition (the client notices only by its own timeouts).
type proxy struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.frozen.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

// TestPartitionedWorkerStopsBeforeAnotherTakesOver (issue 24.4b): the worker applying an
// item loses NATS (partition) for longer than the ack wait. JetStream then gives the item
// to another worker; the first must have stopped applying it before, so that two
// replicas never apply one item at once.
func TestPartitionedWorkerStopsBeforeAnotherTakesOver(t *testing.T) {
	nc := connect(t, true)
	cfg := outbox.Config{AckWait: time.Second, Timeout: 500 * time.Millisecond}
	box := open(t, nc, cfg)
	send(t, box, "nightly", "one")
	px := newProxy(t, strings.TrimPrefix(nc.ConnectedUrl(), "nats://"))
	nc1 := connect2(t, nc)
	nc1.Close()
	nc1, err := nats.Connect(px.url(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc1.Close)
	box1 := open(t, nc1, cfg)
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	taken := make(chan struct{})
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan struct{})
	go func() {
		defer close(done1)
		box1.Run(ctx1, []string{"nightly"}, outbox.WorkerOptions{Apply: func(ctx context.Context, _ string, _ *zuul.Event) (bool, error) {
			note("1 applying")
			close(taken)
			<-ctx.Done() // a long apply: it ends only when the worker gives the item up
			note("1 stopped")
			return true, ctx.Err()
		}, AttemptTimeout: time.Hour, Log: zerolog.Nop()})
	}()
	t.Cleanup(func() { cancel1(); <-done1 })
	<-taken
	rec := newRecorder()
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{Apply: func(ctx context.Context, route string, ev *zuul.Event) (bool, error) {
		note("2 applying")
		return rec.apply(ctx, route, ev)
	}, Log: zerolog.Nop()})
	time.Sleep(3 * cfg.AckWait) // worker 1 is alive and connected: the item stays with it
	if len(rec.list()) != 0 {
		t.Fatal("the item was applied by another worker while worker 1 held it")
	}
	px.frozen.Store(true)
	waitFor(t, 20*time.Second, "the item applied by worker 2", func() bool { return len(rec.list()) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(events, []string{"1 applying", "1 stopped", "2 applying"}) {
		t.Fatalf("events %v: worker 1 still applied the item when worker 2 took it", events)
	}
}
