package delivery

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// drainLate drains p with the grace period already over: whatever still runs is abandoned.
// Drain returns once every worker stopped, so every acknowledgement the workers gave is
// recorded when it returns.
func drainLate(t *testing.T, p *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Drain(ctx); err == nil {
		t.Fatal("Drain reported nothing left behind")
	}
}

// A report whose delivery failed for good is acknowledged only once its dead letter is
// recorded. When the dead-letter subject stays unreachable (retryable errors) until the
// grace period is over, the report is abandoned unacknowledged, for redelivery, and not
// settled: else a failure would be lost without a trace.
func TestUnrecordedDeadLetterIsNotAcked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload func(t *testing.T) []byte
	}{
		// settle (deliver.go): the sink refused the report for good
		{"undeliverable report", func(t *testing.T) []byte { return payload(t, "periodic-daily_failure_mixed.json") }},
		// process (dispatcher.go): the payload is not a Zuul report
		{"rejected payload", func(*testing.T) []byte { return []byte(`{"tenant": 1}`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := sinkFunc(func(context.Context, *zuul.Event) (bool, error) {
				return false, errors.New("400 Bad Request")
			})
			o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"statuspage", sink}}})
			tries := make(chan struct{}, 1)
			o.DeadLetter = func(context.Context, DeadLetter) error {
				select {
				case tries <- struct{}{}:
				default:
				}
				return errors.New("nats: no responders available for request") // retryable
			}
			var settled atomic.Int32
			o.Settled = func(*zuul.Event, bool) { settled.Add(1) }
			p := New(o)
			acks := newAcks()
			p.Handle(acks.msg(t, "zuul/x", tc.payload(t)))
			// Two tries: the dead letter is in its retry loop, not at its first try.
			receive(t, tries, "first dead-letter try")
			receive(t, tries, "second dead-letter try")
			drainLate(t, p)
			if got := acks.all(); len(got) != 0 {
				t.Errorf("acknowledged %v although its dead letter was never recorded", got)
			}
			if n := settled.Load(); n != 0 {
				t.Errorf("Settled called %d times for a report that did not settle", n)
			}
		})
	}
}
