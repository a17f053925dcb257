package delivery

import (
	"context"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// A worker puts each report on the wire as soon as it takes it, but confirms them in runs:
// the reports it started within Linger of the run's first are confirmed together, with one
// NATS round trip, and then acknowledged. At a steady trickle of reports that turns a round
// trip, a PUBACK write and the wake-ups for both per report into one per run, and the
// report's subscribers see it no later: only its acknowledgement waits. A run is confirmed
// early when it holds maxBatch reports, or when all runs together hold MaxUnconfirmed:
// set below the MQTT window, lingering runs never hold it all and stall the intake.
// A report that cannot be started (a sink that is not a Starter, a rejected payload) or
// whose fast attempt failed takes the full path (retries, dead letter) in its turn, after
// the run before it is confirmed, so acknowledgements keep the receive order.

// run is a worker's started, not yet confirmed reports, in receive order.
type run struct {
	jobs   []started
	ctx    context.Context // bounds the run's starts and confirms: Options.AttemptTimeout
	cancel context.CancelFunc
	linger *time.Timer // fires Linger after the run's first start
}

// started is one job of a run and the confirmations its targets owe.
type started struct {
	job      job
	at       time.Time
	confirms []confirmation
	failed   bool // a start failed: the job takes the full path when the run is confirmed
}

type confirmation struct {
	route   *Route
	t       Target
	ev      *zuul.Event // the report, or one of the events of a route that splits it
	confirm func(context.Context) (bool, error)
}

func newRun() *run {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &run{jobs: make([]started, 0, maxBatch), linger: t}
}

// lingering is the timer channel while the run holds reports, nil otherwise.
func (r *run) lingering() <-chan time.Time {
	if len(r.jobs) == 0 {
		return nil
	}
	return r.linger.C
}

// take handles one job from the worker's queue: starts it as part of the run, or confirms
// the run and then processes the job on the full path.
func (p *Dispatcher) take(r *run, j job) {
	// A report a Submit is delivering, or delivered, takes the full path, which waits for
	// the Submit (inflight.go): the open run must not wait with it.
	if !startable(&j) || j.ev != nil && p.flights.submitted(j.ev.ID) {
		p.confirmRun(r)
		p.process(j)
		p.leave(j)
		return
	}
	if len(r.jobs) == 0 {
		r.ctx, r.cancel = context.WithTimeout(p.abortCtx, p.o.AttemptTimeout)
		r.linger.Reset(p.o.Linger)
	}
	s := started{job: j, at: p.o.Now()}
start:
	for i := range j.routes {
		rt := &j.routes[i]
		for k := range rt.count() {
			e := rt.at(j.ev, k)
			for _, t := range rt.route.Targets {
				confirm, _, err := t.Sink.(Starter).Start(r.ctx, e)
				if err != nil {
					s.failed = true
					break start
				}
				s.confirms = append(s.confirms, confirmation{rt.route, t, e, confirm})
			}
		}
	}
	r.jobs = append(r.jobs, s)
	if n := p.unconfirmed.Add(1); len(r.jobs) >= maxBatch || n >= int64(p.o.MaxUnconfirmed) {
		p.confirmRun(r)
	}
}

// confirmRun confirms the run's jobs in order and acknowledges each one that every target
// confirmed; a job with any failure takes the full path (it may then be sent twice, which
// its stable message id makes harmless). Acknowledgements are given last to first within
// each stretch of confirmed jobs: an intake that writes them in receive order (MQTT) then
// writes the whole stretch at once.
func (p *Dispatcher) confirmRun(r *run) {
	if len(r.jobs) == 0 {
		return
	}
	r.linger.Stop()
	defer func() {
		p.unconfirmed.Add(-int64(len(r.jobs)))
		r.cancel()
		for i := range r.jobs {
			p.leave(r.jobs[i].job)
		}
		clear(r.jobs)
		r.jobs = r.jobs[:0]
	}()
	from := 0 // r.jobs[from:k] are confirmed and not yet acknowledged
	ackUpTo := func(k int) {
		for i := k - 1; i >= from; i-- {
			p.ack(r.jobs[i].job.msg)
		}
		from = k
	}
	for k := range r.jobs {
		s := &r.jobs[k]
		if p.abortCtx.Err() != nil {
			ackUpTo(k)
			return // the rest is abandoned: the broker redelivers it
		}
		for _, c := range s.confirms {
			if s.failed {
				break
			}
			if _, err := c.confirm(r.ctx); err != nil {
				s.failed = true
			}
		}
		if s.failed {
			ackUpTo(k)
			from = k + 1
			p.process(s.job) // retries with backoff, dead letter, ack
			continue
		}
		for _, c := range s.confirms {
			p.delivered(c.ev, c.route, c.t, s.at, 1)
		}
		p.kept(s.job.ev, s.job.routes, nil)
		if p.o.Settled != nil {
			p.o.Settled(s.job.ev, true)
		}
	}
	ackUpTo(len(r.jobs))
}

func startable(j *job) bool {
	if j.reject != nil || len(j.routes) == 0 {
		return false
	}
	for i := range j.routes {
		for _, t := range j.routes[i].route.Targets {
			s, ok := t.Sink.(Starter)
			if !ok {
				return false
			}
			if m, ok := s.(MaybeStarter); ok && !m.CanStart() {
				return false
			}
		}
	}
	return true
}

// MaybeStarter is a Starter that can start reports only at times (a sink whose backend is
// chosen at run time); while CanStart is false its reports take the full path.
type MaybeStarter interface {
	Starter
	CanStart() bool
}
