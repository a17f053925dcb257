package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// An attempt that runs into AttemptTimeout is a temporary failure: the delivery is tried
// again within its deadline, and a second attempt that succeeds settles the report
// without a dead letter. The sink answers a timeout as the real ones do (natspub,
// statuspage): retry, with the context's error wrapped. synctest's clock makes the
// timeout instant.
func TestTimedOutAttemptIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const attemptTimeout = 2 * time.Second // below waitLimit: receive's timer is fake too
		var calls atomic.Int32
		firstErr := make(chan error, 1)
		sink := sinkFunc(func(ctx context.Context, _ *zuul.Event) (bool, error) {
			if calls.Add(1) > 1 {
				return false, nil
			}
			<-ctx.Done() // a server that never answers
			firstErr <- ctx.Err()
			return true, fmt.Errorf("jetstream publish: no acknowledgement: %w", ctx.Err())
		})
		dls := make(chan DeadLetter, 1)
		o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", sink}}})
		o.AttemptTimeout, o.Deadline = attemptTimeout, time.Minute
		o.DeadLetter = func(_ context.Context, dl DeadLetter) error { dls <- dl; return nil }
		p := New(o)
		defer func() { // after a failed wait: end the workers, which the bubble would report
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			p.Drain(ctx)
		}()
		acks := newAcks()
		start := time.Now()
		p.Handle(acks.msg(t, "t", payload(t, "periodic-daily_failure_mixed.json")))
		acks.wait(t, "t")
		elapsed := time.Since(start)
		drain(t, p)
		if err := <-firstErr; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("first attempt ended with %v, want its timeout", err)
		}
		if elapsed < attemptTimeout {
			t.Errorf("settled after %v, before the first attempt's timeout of %v", elapsed, attemptTimeout)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("%d sends, want 2: the timed-out one and its retry", n)
		}
		if len(dls) != 0 {
			t.Errorf("dead-lettered (%s), want none: the retry delivered", (<-dls).Reason)
		}
		if got := acks.all(); len(got) != 1 {
			t.Errorf("acknowledged %v, want the report once", got)
		}
	})
}
