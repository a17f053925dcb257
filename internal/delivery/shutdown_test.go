package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// reports returns n copies of the failure sample, each a distinct report (its own
// buildset uuid, hence its own ID), with their IDs.
func reports(t *testing.T, n int) (payloads [][]byte, ids []string) {
	t.Helper()
	base := string(payload(t, "periodic-daily_failure_mixed.json"))
	const old = `"uuid": "22799888a7ae82e51b19a6124a096841"`
	for i := range n {
		b := []byte(strings.Replace(base, old, fmt.Sprintf(`"uuid": "%032x"`, i+1), 1))
		ev, err := zuul.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		payloads, ids = append(payloads, b), append(ids, ev.ID)
	}
	return payloads, ids
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

// blockingStarter starts every report and confirms none: confirm waits until its context
// ends (a NATS server that never acknowledges). Send, the full path, would deliver.
type blockingStarter struct {
	confirming chan string // an ID whose confirm is waiting
	sends      atomic.Int32
}

func (s *blockingStarter) Send(context.Context, *zuul.Event) (bool, error) {
	s.sends.Add(1)
	return false, nil
}

func (s *blockingStarter) Start(_ context.Context, ev *zuul.Event) (func(context.Context) (bool, error), bool, error) {
	return func(ctx context.Context) (bool, error) {
		s.confirming <- ev.ID
		<-ctx.Done()
		return true, ctx.Err()
	}, false, nil
}

// A run aborted at the end of the grace period acknowledges none of its reports whose
// confirmation did not come: here a run of two, confirmed at once (MaxUnconfirmed 2),
// whose first confirm waits when Drain gives up. Neither report is acknowledged, and the
// full path does not deliver the first one after the abort.
func TestAbortedRunAcksNothingUnconfirmed(t *testing.T) {
	msgs, ids := reports(t, 2)
	sink := &blockingStarter{confirming: make(chan string, 2)}
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", sink}}})
	o.Workers, o.Linger, o.MaxUnconfirmed = 1, time.Hour, 2
	p := New(o)
	acks := newAcks()
	for i, b := range msgs {
		p.Handle(acks.msg(t, ids[i], b))
	}
	if got := receive(t, sink.confirming, "confirm of the run"); got != ids[0] {
		t.Fatalf("confirming %s first, want %s", got, ids[0])
	}
	drainLate(t, p)
	if got := acks.all(); len(got) != 0 {
		t.Errorf("acknowledged %v, none of which was confirmed", got)
	}
	if n := sink.sends.Load(); n != 0 {
		t.Errorf("%d sends on the full path after the abort", n)
	}
}
