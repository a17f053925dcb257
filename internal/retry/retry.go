// Package retry is the one backoff policy of the bridge and the loop that uses it. Every
// retry (MQTT reconnect, a delivery to a sink, waiting for a server at start) waits with
// capped exponential backoff and jitter, so that many reports or replicas retrying at once
// do not hit a recovering server in lock-step.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff doubles the wait from Min up to Max. Each wait is drawn from [d/2, d], so the
// waits of many retriers spread out while each still grows.
type Backoff struct {
	Min, Max time.Duration
}

// Delay is the wait before retry number attempt (0 = the first retry: about Min).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Min
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if half := int64(d / 2); half > 0 {
		d = d/2 + time.Duration(rand.Int64N(half+1))
	}
	return d
}

// Sleep waits d or until ctx is done; it reports whether the full wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Until calls op until it returns nil, waiting b.Delay between attempts; onError (may be
// nil) hears each failure with the wait that follows. It stops early with the error of op
// when stop(err) says the error is final, and with ctx.Err() when ctx is done.
func Until(ctx context.Context, b Backoff, op func(ctx context.Context) error, stop func(error) bool, onError func(err error, wait time.Duration)) error {
	for attempt := 0; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if stop != nil && stop(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := b.Delay(attempt)
		if onError != nil {
			onError(err, wait)
		}
		if !Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}
