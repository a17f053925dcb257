package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// settle delivers a report to every target of the matched routes, dead-letters what failed
// for good, and reports whether the report is settled (false: abandoned at shutdown) and
// whether it was applied (settled with no delivery dead-lettered). A route that splits
// the report delivers each of its events (split.go).
func (p *Dispatcher) settle(ev *zuul.Event, routes []routed, topic string, payload []byte) (settled, applied bool) {
	type result struct {
		route *Route
		t     Target
		ev    *zuul.Event
		err   error
	}
	var n int
	for i := range routes {
		n += len(routes[i].route.Targets) * routes[i].count()
	}
	results := make(chan result, n)
	run := func(r *Route, t Target, e *zuul.Event) {
		defer func() { // a sink's bug must not take the process down
			if v := recover(); v != nil {
				results <- result{r, t, e, permanent{fmt.Errorf("sink panicked: %v", v)}}
			}
		}()
		results <- result{r, t, e, p.deliver(e, r, t)}
	}
	for i := range routes {
		rt := &routes[i]
		for k := range rt.count() {
			e := rt.at(ev, k)
			for _, t := range rt.route.Targets {
				if n == 1 { // one target: no goroutine to start and wait for
					run(rt.route, t, e)
				} else {
					go run(rt.route, t, e)
				}
			}
		}
	}
	var failed []result
	abandoned := false
	for range n {
		res := <-results
		switch {
		case res.err == nil:
		case errors.Is(res.err, errAbandoned):
			abandoned = true
		default:
			failed = append(failed, res)
		}
	}
	if abandoned {
		return false, false
	}
	for _, f := range failed {
		dl := DeadLetter{Topic: topic, Payload: payload, ID: f.ev.ID, Route: f.route.Name, Sink: f.t.Kind, Reason: f.err.Error()}
		if !p.deadLetter(dl) {
			return false, false
		}
	}
	var deadLettered []string
	for _, f := range failed {
		name := f.route.Name + "/" + f.t.Kind
		if f.ev.Job != "" {
			name += "/" + f.ev.Job
		}
		deadLettered = append(deadLettered, name)
	}
	p.kept(ev, routes, deadLettered)
	if p.o.Settled != nil {
		p.o.Settled(ev, len(failed) == 0)
	}
	return true, len(failed) == 0
}

var errAbandoned = errors.New("abandoned at shutdown")

type permanent struct{ error }

func (e permanent) Unwrap() error { return e.error }

// deliver sends to one target until it succeeds, fails for good, or the deadline passes.
func (p *Dispatcher) deliver(ev *zuul.Event, r *Route, t Target) error {
	m := p.o.Metrics
	// Built only when something goes wrong: a delivery that succeeds logs nothing above debug.
	log := func() *zerolog.Logger {
		l := p.o.Log.With().Str("route", r.Name).Str("sink", t.Kind).Str("id", ev.ID).Logger()
		return &l
	}
	start := p.o.Now()
	deadline := start.Add(p.o.Deadline)
	for attempt := 0; ; attempt++ {
		if p.abortCtx.Err() != nil {
			m.deliveries.WithLabelValues(r.Name, t.Kind, "abandoned").Inc()
			return errAbandoned
		}
		ctx, cancel := context.WithDeadline(p.abortCtx, minTime(deadline, p.o.Now().Add(p.o.AttemptTimeout)))
		again, err := t.Sink.Send(ctx, ev)
		cancel()
		if err == nil {
			p.delivered(ev, r, t, start, attempt+1)
			return nil
		}
		if p.abortCtx.Err() != nil {
			m.deliveries.WithLabelValues(r.Name, t.Kind, "abandoned").Inc()
			return errAbandoned
		}
		if !again {
			m.deliveries.WithLabelValues(r.Name, t.Kind, "failed").Inc()
			log().Error().Err(err).Msg("delivery failed for good")
			return permanent{err}
		}
		wait := p.backoff.Delay(attempt)
		if !p.o.Now().Add(wait).Before(deadline) {
			m.deliveries.WithLabelValues(r.Name, t.Kind, "failed").Inc()
			log().Error().Err(err).Int("attempts", attempt+1).Stringer("deadline", p.o.Deadline).Msg("delivery failed: deadline reached")
			return fmt.Errorf("deadline of %s reached after %d attempts: %w", p.o.Deadline, attempt+1, err)
		}
		m.retries.WithLabelValues(r.Name, t.Kind).Inc()
		log().Warn().Err(err).Int("attempt", attempt+1).Stringer("backoff", wait.Round(time.Millisecond)).Msg("delivery failed, retrying")
		if !retry.Sleep(p.abortCtx, wait) {
			m.deliveries.WithLabelValues(r.Name, t.Kind, "abandoned").Inc()
			return errAbandoned
		}
	}
}

// deadLetter records a failure, retrying until it is recorded or the process stops; a
// dead letter refused for good (Permanent) is logged, counted and given up.
// It reports whether the message may now be acknowledged.
func (p *Dispatcher) deadLetter(dl DeadLetter) bool {
	m := p.o.Metrics
	if p.o.DeadLetter == nil {
		m.deadLettered.WithLabelValues(dl.Sink).Inc()
		return true
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(p.abortCtx, p.o.AttemptTimeout)
		err := p.o.DeadLetter(ctx, dl)
		cancel()
		if err == nil {
			m.deadLettered.WithLabelValues(dl.Sink).Inc()
			p.o.Log.Warn().Str("topic", dl.Topic).Str("id", dl.ID).Str("route", dl.Route).Str("sink", dl.Sink).
				Str("reason", dl.Reason).Msg("dead-lettered")
			return true
		}
		if IsPermanent(err) {
			// Retrying cannot record it, and holding the message would stall every report
			// behind it: the loss is logged and counted, and the message acknowledged.
			m.deadLetterFailed.WithLabelValues(dl.Sink).Inc()
			p.o.Log.Error().Err(err).Str("topic", dl.Topic).Str("id", dl.ID).Str("route", dl.Route).Str("sink", dl.Sink).
				Int("size", len(dl.Payload)).Str("reason", dl.Reason).Msg("dead letter refused for good; report dropped")
			return true
		}
		p.o.Log.Warn().Err(err).Int("attempt", attempt+1).Msg("dead letter not recorded, retrying")
		if !retry.Sleep(p.abortCtx, p.backoff.Delay(attempt)) {
			return false
		}
	}
}
