package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// counter is an Apply that counts the applications of every item and lets the test
// await a number of distinct items.
type counter struct {
	mu      sync.Mutex
	applied map[string]int
	changed chan struct{}
	gate    chan struct{} // Apply waits for it to be closed
	waiting chan struct{} // closed when Apply first waits at the gate
	once    sync.Once
}

func newCounter() *counter {
	return &counter{applied: map[string]int{}, changed: make(chan struct{}, 1), gate: make(chan struct{}),
		waiting: make(chan struct{})}
}

func (c *counter) apply(ctx context.Context, _ string, ev *zuul.Event) (bool, error) {
	c.once.Do(func() { close(c.waiting) })
	select {
	case <-c.gate:
	case <-ctx.Done():
		return true, ctx.Err()
	}
	c.mu.Lock()
	c.applied[ev.ID]++
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return false, nil
}

func (c *counter) awaitWaiting(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-c.waiting:
	case <-time.After(within):
		t.Fatalf("the worker took no item within %s", within)
	}
}

// await waits until n distinct items were applied.
func (c *counter) await(t *testing.T, n int, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		c.mu.Lock()
		got := len(c.applied)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.changed:
		case <-timeout:
			t.Fatalf("%d of %d items applied within %s", got, n, within)
		}
	}
}

// clusterConn connects to every node of c, first to first.
func clusterConn(t *testing.T, c *natstest.Cluster, first *server.Server) *nats.Conn {
	urls := []string{c.ClientURL(first)}
	for _, u := range c.URLs {
		if u != urls[0] {
			urls = append(urls, u)
		}
	}
	return natstest.Connect(t, strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
}

// store stores ev through the route's sink as the delivery does: again while the error
// is retryable. It returns how many attempts failed.
func store(t *testing.T, sink *outbox.Sink, ev *zuul.Event, within time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	failed := 0
	for {
		again, err := sink.Send(ctx, ev)
		if err == nil {
			return failed
		}
		if !again {
			t.Fatalf("store %s: failed for good: %v", ev.ID, err)
		}
		failed++
		if !retry.Sleep(ctx, 50*time.Millisecond) {
			t.Fatalf("store %s: not stored within %s: %v", ev.ID, within, err)
		}
	}
}

// Issue 23: items stored in an outbox stream with three replicas before and while the
// node leading it is lost are all applied after a new leader is elected, each once (but
// the one in flight at the loss, which may come twice: applying twice is harmless).
func TestOutboxSurvivesLeaderLoss(t *testing.T) {
	for _, mode := range []string{"stop", "crash", "crash-consumer-leader"} {
		t.Run(mode, func(t *testing.T) { testOutboxLeaderLoss(t, mode) })
	}
}

func testOutboxLeaderLoss(t *testing.T, mode string) {
	c := natstest.StartCluster(t, 3)
	nc := clusterConn(t, c, c.Servers[0])
	cfg := outbox.Config{Replicas: 3, AckWait: 2 * time.Second, Timeout: 2 * time.Second}
	var box *outbox.Outbox
	err := retry.Until(t.Context(), retry.Backoff{Min: 100 * time.Millisecond, Max: time.Second}, func(ctx context.Context) (err error) {
		box, err = outbox.Open(ctx, nc, cfg)
		return err
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.StreamLeader(outbox.DefaultStream, 10*time.Second)
	// The worker's and the sink's client is connected to the leader: it loses its server too.
	nc = clusterConn(t, c, leader)
	if box, err = outbox.Open(t.Context(), nc, cfg); err != nil {
		t.Fatal(err)
	}
	sink := box.Sink("r")
	apply := newCounter()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		box.Run(ctx, []string{"r"}, outbox.WorkerOptions{Apply: apply.apply, Log: zerolog.Nop(),
			Backoff: retry.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}})
	})
	defer func() { cancel(); wg.Wait() }()

	const before, during = 10, 10
	for i := range before {
		store(t, sink, event(t, fmt.Sprintf("before-%d", i)), 10*time.Second)
	}
	js, _ := jetstream.New(natstest.Connect(t, c.URL()))
	// The worker holds the first item (and has bound its consumer): note who leads it.
	apply.awaitWaiting(t, 30*time.Second) // binding the consumer is retried with a backoff on a busy machine
	consumerLeader := "?"
	for deadline := time.Now().Add(10 * time.Second); consumerLeader == "?" && time.Now().Before(deadline); {
		if ci, err := js.Consumer(t.Context(), outbox.DefaultStream, outbox.DefaultConsumer+"-r"); err == nil &&
			ci.CachedInfo().Cluster != nil && ci.CachedInfo().Cluster.Leader != "" {
			consumerLeader = ci.CachedInfo().Cluster.Leader
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("stream leader %s, consumer leader %s", leader.Name(), consumerLeader)

	lost := time.Now()
	switch mode {
	case "crash":
		c.Crash(leader)
	case "crash-consumer-leader": // the node the worker pulls from, whichever leads the stream
		for _, s := range c.Servers {
			if s.Name() == consumerLeader {
				c.Crash(s)
			}
		}
		if c.Running()[0] == nil || len(c.Running()) != 2 {
			t.Fatalf("consumer leader %q not found", consumerLeader)
		}
	default:
		c.Stop(leader)
	}
	failed := 0
	var firstStored time.Duration
	for i := range during {
		failed += store(t, sink, event(t, fmt.Sprintf("during-%d", i)), 20*time.Second)
		if i == 0 {
			firstStored = time.Since(lost)
		}
	}
	close(apply.gate) // the worker held the first item until now
	// Losing the consumer's leader costs the worker's pull two missed heartbeats (a third
	// of the pull's expiry each: about 1 s here) and the election; the stream's leader,
	// the Raft election only.
	apply.await(t, before+during, 30*time.Second)
	t.Logf("%s of the leader: storing resumed after %v (%d attempts failed retryably); all %d items applied %v after the loss",
		mode, firstStored.Round(time.Millisecond), failed, before+during, time.Since(lost).Round(time.Millisecond))
	apply.mu.Lock()
	defer apply.mu.Unlock()
	twice := 0
	for id, n := range apply.applied {
		if n > 1 {
			twice++
			t.Logf("%s applied %d times", id, n)
		}
	}
	if twice > 1 {
		t.Errorf("%d items applied more than once; at most the one in flight at the loss may be", twice)
	}
}

// Issue 23: an outbox stream created with one replica is scaled up to the replicas asked
// when it is opened, keeping its items.
func TestOutboxScaledUp(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nc := clusterConn(t, c, c.Servers[0])
	var box *outbox.Outbox
	err := retry.Until(t.Context(), retry.Backoff{Min: 100 * time.Millisecond, Max: time.Second}, func(ctx context.Context) (err error) {
		box, err = outbox.Open(ctx, nc, outbox.Config{Timeout: 2 * time.Second})
		return err
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	store(t, box.Sink("r"), event(t, "kept"), 5*time.Second)
	js, _ := jetstream.New(nc)
	if n := natstest.Replicas(t, js, outbox.DefaultStream); n != 1 {
		t.Fatalf("replicas %d, want 1", n)
	}
	check := kvstore.NewReplicaCheck(zerolog.Nop(), nil)
	box, err = outbox.Open(t.Context(), nc, outbox.Config{Replicas: 3, ReplicaCheck: check})
	if err != nil {
		t.Fatal(err)
	}
	if n := natstest.Replicas(t, js, outbox.DefaultStream); n != 3 {
		t.Fatalf("replicas after opening with 3: %d", n)
	}
	if n, _, err := box.Stats(t.Context()); err != nil || n != 1 {
		t.Fatalf("items after scaling: %d %v, want 1", n, err)
	}
	if notes := check.Notes(); len(notes) != 0 {
		t.Errorf("notes: %q", notes)
	}
}

// Issue 23: three replicas on a single server: creating the stream fails naming the setting.
func TestOutboxReplicasRefused(t *testing.T) {
	nc := connect(t, true)
	_, err := outbox.Open(t.Context(), nc, outbox.Config{Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), kvstore.ReplicasSetting) {
		t.Fatalf("Open with 3 replicas on one server: %v, want an error naming %s", err, kvstore.ReplicasSetting)
	}
}
