package delivery

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// A run is confirmed when it lingered for Linger after its first start, with no further
// report to fill it: the report is acknowledged then, not at Drain. The run's count of
// unconfirmed reports goes back to zero. synctest's clock makes the linger exact.
func TestRunConfirmedAfterLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &starterSink{}
		o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", sink}}})
		o.Workers, o.Linger = 1, 20*time.Millisecond
		p := New(o)
		defer drainLateQuiet(p)
		msgs, ids := reports(t, 1)
		acks := newAcks()
		start := time.Now()
		p.Handle(acks.msg(t, ids[0], msgs[0]))
		acks.wait(t, ids[0])
		if d := time.Since(start); d != o.Linger {
			t.Errorf("acknowledged after %v, want the linger of %v", d, o.Linger)
		}
		drain(t, p)
		if n := p.unconfirmed.Load(); n != 0 {
			t.Errorf("%d reports counted as unconfirmed after the run was confirmed", n)
		}
		if !slices.Equal(sink.starts, ids) || len(sink.sends) != 0 {
			t.Errorf("started %v, sent %v: want the run path only", sink.starts, sink.sends)
		}
	})
}

// A run holding maxBatch reports is confirmed at once, without lingering, also when
// MaxUnconfirmed allows more (several workers share it).
func TestRunConfirmedAtMaxBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &starterSink{}
		o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", sink}}})
		o.Workers, o.Linger, o.MaxUnconfirmed = 1, time.Hour, 4*maxBatch
		p := New(o)
		defer drainLateQuiet(p)
		msgs, ids := reports(t, maxBatch)
		acks := newAcks()
		for i, b := range msgs {
			p.Handle(acks.msg(t, ids[i], b))
		}
		for i := range ids {
			receive(t, acks.ch, "ack "+ids[i]+" of the full run")
		}
		drain(t, p)
		if got := acks.all(); len(got) != maxBatch || got[0] != ids[maxBatch-1] {
			t.Errorf("acknowledged %d, first %v: want the run of %d in one stretch", len(got), got[:1], maxBatch)
		}
	})
}

// starterSendBlocks is a Starter whose Send (the full path, Submit's) blocks the first
// time until released; Start records the reports started on the run path.
type starterSendBlocks struct {
	entered, release chan struct{}
	sends, starts    atomic.Int32
}

func (s *starterSendBlocks) Send(context.Context, *zuul.Event) (bool, error) {
	if s.sends.Add(1) == 1 {
		s.entered <- struct{}{}
		<-s.release
	}
	return false, nil
}

func (s *starterSendBlocks) Start(context.Context, *zuul.Event) (func(context.Context) (bool, error), bool, error) {
	s.starts.Add(1)
	return func(context.Context) (bool, error) { return false, errors.New("not expected") }, false, nil
}

// An MQTT copy of a report that a Submit is delivering is not started on a run, even to
// a sink that can start: it takes the full path, which waits for the Submit and then
// acknowledges it without delivering it again. synctest.Wait lets the worker take the
// copy while the Submit still holds the report.
func TestMQTTCopyOfSubmittedReportSkipsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &starterSendBlocks{entered: make(chan struct{}, 1), release: make(chan struct{})}
		o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"nats", sink}}})
		o.Workers, o.Linger = 1, time.Hour
		p := New(o)
		defer drainLateQuiet(p)
		msgs, ids := reports(t, 1)
		ev, err := zuul.Decode(msgs[0])
		if err != nil {
			t.Fatal(err)
		}
		submitted := make(chan error, 1)
		go func() { submitted <- p.Submit(context.Background(), ev) }()
		receive(t, sink.entered, "the Submit's delivery in the sink")
		acks := newAcks()
		p.Handle(acks.msg(t, ids[0], msgs[0]))
		synctest.Wait() // the worker took the copy: it waits for the Submit
		if n := sink.starts.Load(); n != 0 {
			t.Errorf("the MQTT copy was started %d times on a run while the Submit held it", n)
		}
		close(sink.release)
		if err := receive(t, submitted, "the Submit's result"); err != nil {
			t.Fatal(err)
		}
		drain(t, p)
		if got := acks.all(); !slices.Equal(got, ids) {
			t.Errorf("acknowledged %v, want %v", got, ids)
		}
		if n := sink.sends.Load(); n != 1 {
			t.Errorf("%d sends, want the Submit's only", n)
		}
	})
}

// drainLateQuiet ends the workers after a test failed midway: in a synctest bubble they
// would otherwise be reported as a deadlock, hiding the failure.
func drainLateQuiet(p *Dispatcher) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Drain(ctx)
}
