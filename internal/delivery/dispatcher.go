// Package delivery turns one intake message into settled deliveries: decode, match the
// routes, fan out to every matched sink, retry each with capped backoff up to a deadline,
// dead-letter what failed for good, and only then acknowledge. On shutdown it never
// acknowledges what it did not finish, so the broker redelivers it.
//
//	message --decode--> event --routes--> sink, sink, ... --settled--> ack
//	   |                  |                  | failed for good
//	   | bad payload      | no route         +--> dead letter --> ack
//	   +--> dead letter --+--> ack
package delivery

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Sink delivers one report. retry=true means "temporary, try the same report again";
// an error with retry=false is permanent. Sends for one route and key come in report order.
type Sink interface {
	Send(ctx context.Context, ev *zuul.Event) (retry bool, err error)
}

// Starter is a Sink that can put a report on the wire now and confirm it later, so a
// worker can send a run of queued reports before it waits once for all of them (one NATS
// round trip per batch instead of per report). confirm reports like Send.
type Starter interface {
	Start(ctx context.Context, ev *zuul.Event) (confirm func(context.Context) (retry bool, err error), retry bool, err error)
}

// maxBatch bounds how many queued reports a worker starts before it confirms them.
const maxBatch = 64

// Target is one sink of a route; Kind ("nats", "statuspage") labels logs and metrics.
type Target struct {
	Kind string
	Sink Sink
}

// Route is a named rule: the reports it keeps and where they go. Match is the filter's
// method value, so this package needs no filter import.
type Route struct {
	Name    string
	Match   func(*zuul.Event) bool
	Targets []Target
	// Split, if set, makes the events the route handles of a report (one per job, for
	// `split: jobs`); Match then holds or not for each of them, and each one that it holds
	// for is delivered to every target (split.go). nil: the report as a whole.
	Split func(*zuul.Event) []*zuul.Event
}

// Message is one report as the intake hands it over.
type Message struct {
	Topic   string
	Payload []byte
	Ack     func() error
}

// DeadLetter is what failed for good: the payload as received and why.
type DeadLetter struct {
	Topic   string
	Payload []byte
	ID      string // report identity, "" when the payload did not decode
	Route   string // "" for a payload that did not decode
	Sink    string
	Reason  string
}

// Options configure a Dispatcher; zero values get the documented defaults.
type Options struct {
	Routes     []Route
	MaxPayload int           // bytes; larger payloads are rejected; default 4 MiB
	Deadline   time.Duration // per delivery, all retries included; default 2m
	// AttemptTimeout bounds one Send; default 15s.
	AttemptTimeout time.Duration
	// Linger is how long a worker holds the reports it started before it confirms them
	// together (batch.go); default 20ms.
	Linger time.Duration
	// MaxUnconfirmed bounds the reports started and not yet confirmed, all workers
	// together: reaching it confirms a run at once. Below the intake's window (MQTT
	// Receive Maximum) it keeps lingering runs from holding the whole window; default
	// 64.
	MaxUnconfirmed         int
	BackoffMin, BackoffMax time.Duration // retry backoff, capped exponential; defaults 250ms, 15s
	Workers                int           // parallel keys; default 4
	// DeadLetter records a failed report; nil logs only. It is retried like a delivery,
	// without deadline: an unrecorded failure is not acknowledged.
	DeadLetter func(ctx context.Context, dl DeadLetter) error
	// Settled, if set, is told about every report whose deliveries all settled: applied is
	// true when every sink took it, false when any delivery was dead-lettered (then it must
	// not be remembered as applied: reconciliation may still apply it).
	Settled func(ev *zuul.Event, applied bool)
	// Observe, if set, sees every decoded report (Handle) and every submitted event (Submit)
	// before it is routed, whether a route wants it or not, e.g. to note that its pipeline ran.
	Observe func(ev *zuul.Event)
	// ReportLevel is the level of the one line per decoded report that says what became
	// of it (summary.go): kept, by which routes, or dropped and why. The zero value is
	// debug: a steady stream of reports writes no lines at info. The demo uses info.
	ReportLevel zerolog.Level
	Log         zerolog.Logger
	Metrics     *Metrics // nil: not counted
	Now         func() time.Time
}

// Dispatcher processes messages. Handle is called from the intake goroutine; work runs on
// Workers goroutines, one queue each, chosen by the report's key (tenant, pipeline,
// project, branch) so that reports of one key are applied in order.
type Dispatcher struct {
	o       Options
	backoff retry.Backoff
	queues  []chan job
	seed    maphash.Seed

	stopping chan struct{} // closed by Drain: no new work, finish the queued
	abortCtx context.Context
	abort    context.CancelFunc // at the end of the grace period: abandon what runs
	wg       sync.WaitGroup
	stopOnce sync.Once
	flights  flights // report ids held by queued messages and by Submit (inflight.go)

	unconfirmed atomic.Int64 // reports in the workers' runs (batch.go)

	routes atomic.Pointer[[]Route] // the route set in force; swapped by SetRoutes (reload.go)
}

type job struct {
	msg    Message
	ev     *zuul.Event // nil for a rejected payload
	routes []routed
	reject *rejection
}

type rejection struct {
	reason string
	err    error
}

// queueLen is each worker's queue. Together with the MQTT receive maximum it bounds the
// reports held in memory. A worker's batch is what is queued when it looks, so the queue
// is as long as a batch may be: a burst is then confirmed with a NATS round trip per up to
// maxBatch reports, not per 16.
const queueLen = maxBatch

// New checks the options and starts the workers.
func New(o Options) *Dispatcher {
	if o.MaxPayload <= 0 {
		o.MaxPayload = 4 << 20
	}
	if o.Deadline <= 0 {
		o.Deadline = 2 * time.Minute
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 15 * time.Second
	}
	if o.Linger <= 0 {
		o.Linger = 20 * time.Millisecond
	}
	if o.MaxUnconfirmed <= 0 {
		o.MaxUnconfirmed = maxBatch
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 250 * time.Millisecond
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(15*time.Second, o.BackoffMin)
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	p := &Dispatcher{o: o, backoff: retry.Backoff{Min: o.BackoffMin, Max: o.BackoffMax}, seed: maphash.MakeSeed(), stopping: make(chan struct{})}
	p.abortCtx, p.abort = context.WithCancel(context.Background())
	p.SetRoutes(o.Routes)
	p.queues = make([]chan job, o.Workers)
	for i := range p.queues {
		p.queues[i] = make(chan job, queueLen)
		p.wg.Add(1)
		go p.worker(p.queues[i])
	}
	return p
}

// Handle takes one message. It decodes and routes at once (cheap, and in receive order)
// and queues the deliveries; it blocks when the chosen queue is full, which holds back
// the intake (backpressure). After Drain began it returns without acknowledging.
func (p *Dispatcher) Handle(msg Message) {
	m := p.o.Metrics
	m.received.Inc()
	now := p.o.Now().UnixNano()
	m.lastReport.Set(float64(now) / 1e9)
	m.lastUnix.Store(now)
	j := p.route(msg)
	if j.reject == nil && len(j.routes) == 0 {
		m.filtered.Inc()
		p.dropped(j.ev)
		p.ack(msg)
		return
	}
	var q chan job
	if j.ev != nil {
		q = p.queues[p.shard(j.ev)]
	} else {
		q = p.queues[maphash.String(p.seed, msg.Topic)%uint64(len(p.queues))]
	}
	if j.ev != nil {
		p.flights.enterMQTT(j.ev.ID)
	}
	select {
	case q <- j:
	case <-p.stopping:
		p.leave(j)
	}
}

// leave ends a job's hold on its report id.
func (p *Dispatcher) leave(j job) {
	if j.ev != nil {
		p.flights.leaveMQTT(j.ev.ID)
	}
}

func (p *Dispatcher) route(msg Message) job {
	j := job{msg: msg}
	if len(msg.Payload) > p.o.MaxPayload {
		j.reject = &rejection{"too_large", fmt.Errorf("payload of %d bytes is over the limit of %d", len(msg.Payload), p.o.MaxPayload)}
		return j
	}
	ev, err := zuul.Decode(msg.Payload)
	if err != nil {
		reason := "not_json"
		var de *zuul.DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		j.reject = &rejection{reason, err}
		return j
	}
	j.ev = ev
	p.o.Metrics.decoded.Inc()
	if p.o.Observe != nil {
		p.o.Observe(ev)
	}
	j.routes = p.matchRoutes(ev)
	return j
}

func (p *Dispatcher) shard(ev *zuul.Event) uint64 {
	var h maphash.Hash
	h.SetSeed(p.seed)
	for _, s := range [...]string{ev.Tenant, ev.Pipeline, ev.Project, ev.Branch} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	return h.Sum64() % uint64(len(p.queues))
}

func (p *Dispatcher) worker(q chan job) {
	defer p.wg.Done()
	r := newRun()
	for {
		select {
		case j := <-q:
			p.take(r, j)
		case <-r.lingering():
			p.confirmRun(r)
		case <-p.stopping:
			for { // finish what was queued before the stop
				select {
				case j := <-q:
					p.take(r, j)
				default:
					p.confirmRun(r)
					return
				}
			}
		}
	}
}

// Drain stops taking work, lets queued and running deliveries finish until ctx is done,
// then abandons the rest unacknowledged. Call it after the intake stopped.
func (p *Dispatcher) Drain(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stopping) })
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.abort()
		return nil
	case <-ctx.Done():
		p.abort()
		<-done
		return fmt.Errorf("grace period over: unfinished deliveries left unacknowledged for redelivery")
	}
}

func (p *Dispatcher) process(j job) {
	if p.abortCtx.Err() != nil {
		return // abandoned: the broker redelivers
	}
	if j.ev != nil && p.flights.awaitSubmit(p.abortCtx, j.ev.ID) {
		if e := p.o.Log.WithLevel(p.o.ReportLevel); e.Enabled() {
			reportFields(e, j.ev).Msg("report acknowledged: its zuul-web copy was delivered meanwhile")
		}
		if p.o.Settled != nil {
			p.o.Settled(j.ev, true)
		}
		p.ack(j.msg)
		return
	}
	if j.reject != nil {
		p.o.Metrics.rejected.WithLabelValues(j.reject.reason).Inc()
		p.o.Log.Warn().Str("topic", j.msg.Topic).Int("size", len(j.msg.Payload)).Str("reason", j.reject.reason).
			Err(j.reject.err).Msg("rejected: not a Zuul report")
		dl := DeadLetter{Topic: j.msg.Topic, Payload: j.msg.Payload, Reason: j.reject.reason + ": " + j.reject.err.Error()}
		if p.deadLetter(dl) {
			p.ack(j.msg)
		}
		return
	}
	if settled, _ := p.settle(j.ev, j.routes, j.msg.Topic, j.msg.Payload); settled {
		p.ack(j.msg)
	}
}

// Submit routes and delivers one event from another source (the zuul-web reconciler) like
// an MQTT report, and returns when it settled. An error means it did not settle (shutdown);
// the caller tries again later. ErrInFlight means an MQTT message holds the same report:
// the MQTT path delivers it (inflight.go). ErrDeadLettered means it settled without being
// applied: a delivery failed for good and was dead-lettered; an MQTT copy of the report
// waiting meanwhile then delivers itself instead of being acknowledged as delivered.
func (p *Dispatcher) Submit(ctx context.Context, ev *zuul.Event) error {
	if p.o.Observe != nil {
		p.o.Observe(ev)
	}
	routes := p.matchRoutes(ev)
	if len(routes) == 0 {
		p.o.Metrics.filtered.Inc()
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	done, err := p.flights.enterSubmit(ev.ID)
	if err != nil {
		return err
	}
	settled, applied := p.settle(ev, routes, "zuul-web", ev.Raw)
	done(applied)
	switch {
	case !settled:
		return errAbandoned
	case !applied:
		return ErrDeadLettered
	}
	return nil
}

// ErrDeadLettered: Submit settled a report by dead-lettering a delivery that failed for
// good; the report was not applied.
var ErrDeadLettered = errors.New("delivery: settled by a dead letter, not applied")

func (p *Dispatcher) ack(msg Message) {
	if err := msg.Ack(); err != nil {
		// Only after a reconnect: the broker redelivers, and redelivery is harmless.
		p.o.Log.Debug().Err(err).Str("topic", msg.Topic).Msg("ack not sent")
		return
	}
	p.o.Metrics.acked.Inc()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
