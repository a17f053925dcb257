package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// sinkFunc adapts a function to Sink; the tests drive the pipeline's retry and ack logic
// through it. The real sinks have their own tests against real servers.
type sinkFunc func(ctx context.Context, ev *zuul.Event) (bool, error)

func (f sinkFunc) Send(ctx context.Context, ev *zuul.Event) (bool, error) { return f(ctx, ev) }

type ackRecorder struct {
	mu    sync.Mutex
	acked []string
	ch    chan string
}

func newAcks() *ackRecorder { return &ackRecorder{ch: make(chan string, 100)} }

func (a *ackRecorder) msg(t *testing.T, topic string, payload []byte) Message {
	return Message{Topic: topic, Payload: payload, Ack: func() error {
		a.mu.Lock()
		a.acked = append(a.acked, topic)
		a.mu.Unlock()
		a.ch <- topic
		return nil
	}}
}

// all is every acknowledgement so far, in the order given.
func (a *ackRecorder) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.acked)
}

func (a *ackRecorder) wait(t *testing.T, topic string) {
	t.Helper()
	if got := receive(t, a.ch, "ack for "+topic); got != topic {
		t.Fatalf("acked %q, want %q", got, topic)
	}
}

func payload(t *testing.T, name string) []byte {
	b := samples.Get(name)
	if b == nil {
		t.Fatalf("no sample %s", name)
	}
	return b
}

func failing(ev *zuul.Event) bool { return ev.Outcome == zuul.OutcomeFailure }

func fastOptions(routes ...Route) Options {
	return Options{Routes: routes, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond, Log: zerolog.Nop(), Metrics: NewMetrics(nil)}
}

func TestDeliverAndAck(t *testing.T) {
	var got []string
	var mu sync.Mutex
	sink := sinkFunc(func(_ context.Context, ev *zuul.Event) (bool, error) {
		mu.Lock()
		got = append(got, ev.ID)
		mu.Unlock()
		return false, nil
	})
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"test", sink}}})
	p := New(o)
	acks := newAcks()
	p.Handle(acks.msg(t, "fail", payload(t, "periodic-daily_failure_mixed.json")))
	acks.wait(t, "fail")
	p.Handle(acks.msg(t, "success", payload(t, "periodic-daily_success.json")))
	acks.wait(t, "success")
	drain(t, p)
	if len(got) != 1 {
		t.Fatalf("sink got %v, want only the failure", got)
	}
	m := o.Metrics
	if testutil.ToFloat64(m.filtered) != 1 || testutil.ToFloat64(m.deliveries.WithLabelValues("r", "test", "delivered")) != 1 || testutil.ToFloat64(m.acked) != 2 {
		t.Fatal("metrics do not add up")
	}
}

func TestRetryThenDeliver(t *testing.T) {
	var calls atomic.Int32
	sink := sinkFunc(func(context.Context, *zuul.Event) (bool, error) {
		if calls.Add(1) < 3 {
			return true, errors.New("503")
		}
		return false, nil
	})
	var dead atomic.Int32
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"test", sink}}})
	o.DeadLetter = func(context.Context, DeadLetter) error { dead.Add(1); return nil }
	p := New(o)
	acks := newAcks()
	p.Handle(acks.msg(t, "t", payload(t, "periodic-daily_failure_mixed.json")))
	acks.wait(t, "t")
	drain(t, p)
	if calls.Load() != 3 || dead.Load() != 0 || testutil.ToFloat64(o.Metrics.retries.WithLabelValues("r", "test")) != 2 {
		t.Fatalf("calls %d dead %d", calls.Load(), dead.Load())
	}
}

func TestPermanentFailureIsDeadLetteredThenAcked(t *testing.T) {
	nats := sinkFunc(func(context.Context, *zuul.Event) (bool, error) { return false, nil })
	sp := sinkFunc(func(context.Context, *zuul.Event) (bool, error) { return false, errors.New("400 Bad Request") })
	dls := make(chan DeadLetter, 10)
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", nats}, {"statuspage", sp}}})
	o.DeadLetter = func(_ context.Context, dl DeadLetter) error { dls <- dl; return nil }
	p := New(o)
	acks := newAcks()
	p.Handle(acks.msg(t, "t", payload(t, "periodic-daily_failure_mixed.json")))
	acks.wait(t, "t")
	drain(t, p)
	dl := receive(t, dls, "dead letter")
	if dl.Sink != "statuspage" || dl.Route != "r" || !strings.Contains(dl.Reason, "400") || len(dl.Payload) == 0 || dl.ID == "" {
		t.Fatalf("dead letter %+v", dl)
	}
	if len(dls) != 0 {
		t.Fatal("the delivered sink was dead-lettered too")
	}
}

func TestDeadlineEndsRetries(t *testing.T) {
	var calls atomic.Int32
	sink := sinkFunc(func(context.Context, *zuul.Event) (bool, error) { calls.Add(1); return true, errors.New("timeout") })
	dls := make(chan DeadLetter, 10)
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"test", sink}}})
	o.Deadline = 30 * time.Millisecond
	o.DeadLetter = func(_ context.Context, dl DeadLetter) error { dls <- dl; return nil }
	p := New(o)
	acks := newAcks()
	p.Handle(acks.msg(t, "t", payload(t, "periodic-daily_failure_mixed.json")))
	acks.wait(t, "t")
	drain(t, p)
	// The reason counts the attempts made: every call of the sink.
	if dl := receive(t, dls, "dead letter"); !strings.Contains(dl.Reason, "deadline") ||
		!strings.Contains(dl.Reason, fmt.Sprintf(" after %d attempts:", calls.Load())) {
		t.Fatalf("reason %q, want the deadline after %d attempts", dl.Reason, calls.Load())
	}
}

func TestRejectedPayloads(t *testing.T) {
	dls := make(chan DeadLetter, 10)
	o := fastOptions()
	o.MaxPayload = 1000
	o.DeadLetter = func(_ context.Context, dl DeadLetter) error { dls <- dl; return nil }
	p := New(o)
	acks := newAcks()
	for _, c := range []struct{ topic, payload, reason string }{
		{"a", "not json", "not_json"},
		{"b", strings.Repeat(" ", 1001), "too_large"},
		{"c", `{"tenant": 1}`, "wrong_shape"},
		{"d", "\xff\xfe", "invalid_utf8"},
		{"e", "{}" + strings.Repeat(" ", 998), "missing_field"}, // at the limit: not too large
	} {
		p.Handle(acks.msg(t, c.topic, []byte(c.payload)))
		acks.wait(t, c.topic)
		dl := receive(t, dls, "dead letter of "+c.topic)
		if dl.Topic != c.topic || !strings.HasPrefix(dl.Reason, c.reason) || string(dl.Payload) != c.payload {
			t.Errorf("dead letter %+v, want reason %s", dl, c.reason)
		}
		if testutil.ToFloat64(o.Metrics.rejected.WithLabelValues(c.reason)) != 1 {
			t.Errorf("rejected{%s} not counted", c.reason)
		}
	}
	drain(t, p)
}

func TestDrainAbandonsUnfinishedWithoutAck(t *testing.T) {
	entered := make(chan struct{})
	sink := sinkFunc(func(ctx context.Context, _ *zuul.Event) (bool, error) {
		close(entered)
		<-ctx.Done()
		return true, ctx.Err()
	})
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"test", sink}}})
	dead := false
	o.DeadLetter = func(context.Context, DeadLetter) error { dead = true; return nil }
	p := New(o)
	acks := newAcks()
	p.Handle(acks.msg(t, "t", payload(t, "periodic-daily_failure_mixed.json")))
	receive(t, entered, "call of the sink")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the grace period is already over
	if err := p.Drain(ctx); err == nil {
		t.Fatal("Drain reported nothing left behind")
	}
	if len(acks.acked) != 0 || dead {
		t.Fatalf("acked %v dead-lettered %v: an unfinished delivery must stay unacknowledged", acks.acked, dead)
	}
	p.Handle(acks.msg(t, "late", payload(t, "periodic-daily_failure_mixed.json")))
	if len(acks.acked) != 0 {
		t.Fatal("a message handed over after Drain was acknowledged")
	}
}

func TestOrderPerKey(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	sink := sinkFunc(func(_ context.Context, ev *zuul.Event) (bool, error) {
		mu.Lock()
		seen = append(seen, ev.Action)
		mu.Unlock()
		return false, nil
	})
	all := func(*zuul.Event) bool { return true }
	p := New(fastOptions(Route{Name: "r", Match: all, Targets: []Target{{"test", sink}}}))
	acks := newAcks()
	for _, name := range []string{"periodic-daily_start.json", "periodic-daily_failure_mixed.json", "periodic-daily_success.json"} {
		p.Handle(acks.msg(t, name, payload(t, name)))
	}
	drain(t, p)
	if strings.Join(seen, ",") != "start,failure,success" {
		t.Fatalf("order %v", seen)
	}
}

// A run is confirmed as soon as the runs together hold MaxUnconfirmed reports, long before
// it lingered out; a report after that starts a new run, which lingers.
func TestRunConfirmedAtMaxUnconfirmed(t *testing.T) {
	base := payload(t, "periodic-daily_failure_mixed.json")
	sink := &starterSink{}
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", sink}}})
	o.Workers, o.Linger, o.MaxUnconfirmed = 1, time.Hour, 3
	p := New(o)
	acks := newAcks()
	var ids []string
	for i := range 4 {
		b := []byte(strings.Replace(string(base), `"uuid": "22799888a7ae82e51b19a6124a096841"`, `"uuid": "`+strings.Repeat(string(rune('a'+i)), 32)+`"`, 1))
		ev, err := zuul.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
		p.Handle(acks.msg(t, ev.ID, b))
	}
	for _, id := range []string{ids[2], ids[1], ids[0]} {
		acks.wait(t, id)
	}
	if got := acks.all(); len(got) != 3 {
		t.Errorf("acknowledged %v before Drain, want the first three only", got)
	}
	drain(t, p)
	acks.wait(t, ids[3])
}

// starterSink is a Sink and a Starter: the batch path starts and confirms; Send is the
// full path.
type starterSink struct {
	mu        sync.Mutex
	sends     []string
	starts    []string
	failStart string // an ID whose confirm fails
}

func (s *starterSink) Send(_ context.Context, ev *zuul.Event) (bool, error) {
	s.mu.Lock()
	s.sends = append(s.sends, ev.ID)
	s.mu.Unlock()
	return false, nil
}

func (s *starterSink) Start(_ context.Context, ev *zuul.Event) (func(context.Context) (bool, error), bool, error) {
	s.mu.Lock()
	s.starts = append(s.starts, ev.ID)
	s.mu.Unlock()
	return func(context.Context) (bool, error) {
		if ev.ID == s.failStart {
			return true, errors.New("flush failed")
		}
		return false, nil
	}, false, nil
}

// A worker starts the reports it takes at once and confirms them as a run: here the run
// lingers until Drain, so all six are started before the first is confirmed. The one
// whose confirm fails takes the full path (Send) in its turn. Acknowledgements are given
// last to first within each stretch of confirmed reports (the MQTT intake writes them in
// receive order all the same, at once): 2 1 0, then 3 after its Send, then 5 4.
func TestRunStartsThenConfirmsInOrder(t *testing.T) {
	base := payload(t, "periodic-daily_failure_mixed.json")
	var msgs [][]byte
	var ids []string
	for i := range 6 {
		b := []byte(strings.Replace(string(base), `"uuid": "22799888a7ae82e51b19a6124a096841"`, `"uuid": "`+strings.Repeat(string(rune('a'+i)), 32)+`"`, 1))
		msgs = append(msgs, b)
		ev, err := zuul.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	sink := &starterSink{failStart: ids[3]}
	o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", sink}}})
	o.Workers = 1
	o.Linger = time.Hour // the run is confirmed by Drain
	p := New(o)
	acks := newAcks()
	for i, b := range msgs {
		p.Handle(acks.msg(t, ids[i], b))
	}
	drain(t, p)
	want := []string{ids[2], ids[1], ids[0], ids[3], ids[5], ids[4]}
	if got := acks.all(); !slices.Equal(got, want) {
		t.Errorf("acknowledged %v, want %v", got, want)
	}
	if !slices.Equal(sink.starts, ids) {
		t.Errorf("started %v, want all six in order", sink.starts)
	}
	if !slices.Equal(sink.sends, ids[3:4]) {
		t.Errorf("full path for %v, want only the one whose confirm failed", sink.sends)
	}
}
