package delivery

import (
	"context"
	"testing"
	"time"
)

// waitLimit bounds every wait of these tests: a bug fails with a message instead of
// hanging until the test binary's timeout.
const waitLimit = 10 * time.Second

// receive returns the next value from ch, or fails the test after waitLimit.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s within %v", what, waitLimit)
		var zero T
		return zero
	}
}

// drain drains p and fails the test if something is still unfinished after waitLimit.
func drain(t *testing.T, p *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := p.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v (deliveries still unfinished after %v)", err, waitLimit)
	}
}
