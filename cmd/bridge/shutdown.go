package main

import (
	"context"
	"time"
)

// shutdownContexts splits the grace period (BRIDGE_SHUTDOWN_GRACE) so that the whole
// shutdown keeps within it: deliveries in flight get the grace less a reserve; closing
// (acks flushed, MQTT disconnected, NATS flushed, HTTP stopped) gets what is left, at
// least the reserve. Closing normally takes milliseconds; the reserve bounds it when a
// broker does not answer.
func shutdownContexts(grace time.Duration) (drain, closing context.Context, cancel context.CancelFunc) {
	reserve := min(grace/4, 5*time.Second)
	end := time.Now().Add(grace)
	closing, cancelClosing := context.WithDeadline(context.Background(), end)
	drain, cancelDrain := context.WithDeadline(closing, end.Add(-reserve))
	return drain, closing, func() { cancelDrain(); cancelClosing() }
}

// awaitDone waits for done, but not past ctx; it reports whether done closed.
func awaitDone(ctx context.Context, done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
