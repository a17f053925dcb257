package delivery

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TestDeadLetterRefusedForGoodDoesNotWedge: the sink fails for good and so does its dead
// letter; the message is acknowledged (the loss logged and counted), and the next report
// goes through.
func TestDeadLetterRefusedForGoodDoesNotWedge(t *testing.T) {
	var sent atomic.Int32
	sink := sinkFunc(func(_ context.Context, ev *zuul.Event) (bool, error) {
		if ev.Project == "poison" {
			return false, errors.New("message over the NATS server's max_payload")
		}
		sent.Add(1)
		return false, nil
	})
	var dlCalls atomic.Int32
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", sink}}})
	o.DeadLetter = func(context.Context, DeadLetter) error {
		dlCalls.Add(1)
		return Permanent(errors.New("permissions violation for publish to the dead-letter subject"))
	}
	p := New(o)
	acks := newAcks()
	ev := payload(t, "periodic-daily_failure_mixed.json")
	poison := replaceProject(ev, "poison")
	p.Handle(acks.msg(t, "poison", poison))
	acks.wait(t, "poison")
	p.Handle(acks.msg(t, "good", ev))
	acks.wait(t, "good")
	p.Drain(context.Background())
	if dlCalls.Load() != 1 || sent.Load() != 1 || testutil.ToFloat64(o.Metrics.deadLetterFailed.WithLabelValues("nats")) != 1 {
		t.Fatalf("dead-letter calls %d (want 1: no retry), sent %d", dlCalls.Load(), sent.Load())
	}
}

func replaceProject(payload []byte, project string) []byte {
	ev, _ := zuul.Decode(payload)
	return bytes.ReplaceAll(payload, []byte(`"project": "`+ev.Project+`"`), []byte(`"project": "`+project+`"`))
}

// TestSubmitDefersToTheMQTTCopy: while an MQTT message holds a report, Submit of the same
// report returns ErrInFlight and delivers nothing; after it settled, the id is free.
func TestSubmitDefersToTheMQTTCopy(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var sent atomic.Int32
	sink := sinkFunc(func(context.Context, *zuul.Event) (bool, error) {
		entered <- struct{}{}
		<-release
		sent.Add(1)
		return false, nil
	})
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"test", sink}}})
	p := New(o)
	acks := newAcks()
	raw := payload(t, "periodic-daily_failure_mixed.json")
	p.Handle(acks.msg(t, "mqtt", raw))
	receive(t, entered, "the delivery in the sink")
	ev, _ := zuul.Decode(raw)
	ev.Source, ev.Recovered = zuul.SourceREST, true
	if err := p.Submit(context.Background(), ev); !errors.Is(err, ErrInFlight) {
		t.Fatalf("Submit while the MQTT copy is in flight: %v", err)
	}
	close(release)
	acks.wait(t, "mqtt")
	p.Drain(context.Background())
	if sent.Load() != 1 {
		t.Fatalf("delivered %d times", sent.Load())
	}
	if n := p.flights.inFlight(); n != 0 {
		t.Fatalf("%d ids still held after everything settled", n)
	}
}

// TestMQTTCopyWaitsForSubmit: an MQTT message arriving while Submit delivers the same
// report waits for it and is acknowledged without a second delivery.
func TestMQTTCopyWaitsForSubmit(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var sent atomic.Int32
	sink := sinkFunc(func(context.Context, *zuul.Event) (bool, error) {
		if sent.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		}
		return false, nil
	})
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"test", sink}}})
	p := New(o)
	raw := payload(t, "periodic-daily_failure_mixed.json")
	ev, _ := zuul.Decode(raw)
	submitted := make(chan error, 1)
	go func() { submitted <- p.Submit(context.Background(), ev) }()
	receive(t, entered, "the Submit's delivery in the sink")
	acks := newAcks()
	p.Handle(acks.msg(t, "mqtt", raw))
	select {
	case <-acks.ch:
		t.Fatal("the MQTT copy was acknowledged before the Submit settled")
	case <-time.After(50 * time.Millisecond): // a negative check: nothing may happen meanwhile
	}
	close(release)
	if err := receive(t, submitted, "the Submit's result"); err != nil {
		t.Fatal(err)
	}
	acks.wait(t, "mqtt")
	// A later copy of the same report (a redelivery) is not delivered again either.
	p.Handle(acks.msg(t, "mqtt-again", raw))
	acks.wait(t, "mqtt-again")
	p.Drain(context.Background())
	if sent.Load() != 1 {
		t.Fatalf("delivered %d times, want once", sent.Load())
	}
}

// TestSubmitThatOnlyDeadLetteredIsNotApplied: a Submit whose delivery fails for good
// settles through the dead letter and says so (ErrDeadLettered), so that reconciliation
// does not remember the report as applied; an MQTT copy that waited for it is delivered by
// itself, not acknowledged as if the Submit had delivered it.
func TestSubmitThatOnlyDeadLetteredIsNotApplied(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var calls, delivered atomic.Int32
	sink := sinkFunc(func(context.Context, *zuul.Event) (bool, error) {
		if calls.Add(1) == 1 { // the Submit's delivery: held, then refused for good
			entered <- struct{}{}
			<-release
			return false, errors.New("400 Bad Request")
		}
		delivered.Add(1)
		return false, nil
	})
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"test", sink}}})
	var dead atomic.Int32
	o.DeadLetter = func(context.Context, DeadLetter) error { dead.Add(1); return nil }
	p := New(o)
	raw := payload(t, "periodic-daily_failure_mixed.json")
	ev, _ := zuul.Decode(raw)
	submitted := make(chan error, 1)
	go func() { submitted <- p.Submit(context.Background(), ev) }()
	receive(t, entered, "the Submit's delivery in the sink")
	acks := newAcks()
	p.Handle(acks.msg(t, "mqtt", raw)) // waits for the Submit
	close(release)
	if err := receive(t, submitted, "the Submit's result"); !errors.Is(err, ErrDeadLettered) {
		t.Fatalf("Submit = %v, want ErrDeadLettered", err)
	}
	acks.wait(t, "mqtt")
	p.Drain(context.Background())
	if dead.Load() != 1 || delivered.Load() != 1 {
		t.Fatalf("dead letters %d (want 1, the Submit's), deliveries of the MQTT copy %d (want 1)", dead.Load(), delivered.Load())
	}
}
