package pipeline

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is min·2^attempt capped at max, with ±20% jitter so that retries of many
// reports do not hit a recovering server in lock-step.
func backoff(min, max time.Duration, attempt int) time.Duration {
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	if d > max {
		d = max
	}
	return d
}

// sleep waits d or until ctx is done; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
