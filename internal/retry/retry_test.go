package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
)

func TestDelayGrowsWithinBounds(t *testing.T) {
	b := retry.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			d := b.Delay(attempt)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := (retry.Backoff{}).Delay(3); d != 0 {
		t.Fatalf("zero Backoff: Delay = %v, want 0", d)
	}
}

func TestUntilStopsOnSuccessFinalErrorAndCancel(t *testing.T) {
	b := retry.Backoff{Min: time.Microsecond, Max: time.Microsecond}
	calls, heard := 0, 0
	err := retry.Until(t.Context(), b, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}, nil, func(error, time.Duration) { heard++ })
	if err != nil || calls != 3 || heard != 2 {
		t.Fatalf("success after 3: err=%v calls=%d heard=%d", err, calls, heard)
	}

	final := errors.New("final")
	err = retry.Until(t.Context(), b, func(context.Context) error { return final },
		func(err error) bool { return errors.Is(err, final) }, nil)
	if !errors.Is(err, final) {
		t.Fatalf("final error: got %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	err = retry.Until(ctx, retry.Backoff{Min: time.Hour, Max: time.Hour}, func(context.Context) error {
		cancel()
		return errors.New("down")
	}, nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v", err)
	}
}
