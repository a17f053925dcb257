package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
)

// A replica that stops cleanly hands its route over: another replica, running all along,
// applies the items stored after it stopped within seconds, without waiting for the pin
// to expire.
func TestCleanStopHandsTheRouteOver(t *testing.T) {
	nc := connect(t, true)
	cfg := outbox.Config{AckWait: 20 * time.Second} // the pin would hold 30 s without a hand-over
	box := open(t, nc, cfg)
	ctx := context.Background()
	nc1, err := nats.Connect(nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc1.Close)
	box1 := open(t, nc1, cfg)
	rec1 := newRecorder()
	ctx1, stop1 := context.WithCancel(ctx)
	done1 := make(chan struct{})
	go func() {
		box1.Run(ctx1, []string{"nightly"}, outbox.WorkerOptions{Apply: rec1.apply, Log: zerolog.Nop()})
		close(done1)
	}()
	if _, err := box.Sink("nightly").Send(ctx, event(t, "first")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "worker 1 applies the first item", func() bool { return len(rec1.list()) == 1 })
	rec2 := newRecorder()
	run(t, box, []string{"nightly"}, outbox.WorkerOptions{Apply: rec2.apply, Log: zerolog.Nop()})
	stop1()
	<-done1
	start := time.Now()
	for i := range 3 {
		if _, err := box.Sink("nightly").Send(ctx, event(t, fmt.Sprintf("after-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "worker 2 applies what came after the hand-over", func() bool { return len(rec2.list()) == 3 })
	t.Logf("taken over in %v", time.Since(start).Round(time.Millisecond))
}
