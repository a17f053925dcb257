package delivery

import (
	"context"
	"errors"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TestSettledSaysWhetherApplied: a report every sink took is settled as applied; one
// with a dead-lettered delivery is settled, acknowledged, but not applied, so that
// reconciliation does not take it for done.
func TestSettledSaysWhetherApplied(t *testing.T) {
	ok := sinkFunc(func(context.Context, *zuul.Event) (bool, error) { return false, nil })
	bad := sinkFunc(func(context.Context, *zuul.Event) (bool, error) { return false, errors.New("400") })
	for _, tc := range []struct {
		name    string
		targets []Target
		applied bool
	}{
		{"delivered", []Target{{"nats", ok}, {"statuspage", ok}}, true},
		{"dead-lettered", []Target{{"nats", ok}, {"statuspage", bad}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := fastOptions(Route{Name: "r", Match: failing, Targets: tc.targets})
			settled := make(chan bool, 1)
			o.Settled = func(_ *zuul.Event, applied bool) { settled <- applied }
			p := New(o)
			defer p.Drain(context.Background())
			acks := newAcks()
			p.Handle(acks.msg(t, "zuul/x", payload(t, "periodic-daily_failure_mixed.json")))
			acks.wait(t, "zuul/x")
			if got := receive(t, settled, "Settled call"); got != tc.applied {
				t.Fatalf("Settled applied=%v, want %v", got, tc.applied)
			}
		})
	}
}
