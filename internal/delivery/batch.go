package delivery

import "context"

// processBatch handles queued jobs in order. Runs of jobs whose every target is a Starter
// are started together and confirmed in order; anything else, and any job whose fast
// attempt failed, takes the full path (retries, dead letter) in its turn, so acks keep
// the receive order.
func (p *Dispatcher) processBatch(batch []job) {
	for k := range batch { // a report a Submit is delivering: wait for it (inflight.go)
		if ev := batch[k].ev; ev != nil && p.flights.awaitSubmit(p.abortCtx, ev.ID) {
			batch[k].dup = true
		}
	}
	for i := 0; i < len(batch); {
		n := 0
		for i+n < len(batch) && startable(&batch[i+n]) {
			n++
		}
		if n < 2 {
			p.process(batch[i])
			i++
			continue
		}
		p.processStarted(batch[i : i+n])
		i += n
	}
}

func startable(j *job) bool {
	if j.reject != nil || len(j.routes) == 0 || j.dup {
		return false
	}
	for _, r := range j.routes {
		for _, t := range r.Targets {
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

// processStarted is the fast path for a run of startable jobs: start all, then confirm
// each in order and acknowledge it; a job with any failure goes the full path instead
// (a report may then be sent twice, which its stable message id makes harmless).
func (p *Dispatcher) processStarted(run []job) {
	if p.abortCtx.Err() != nil {
		return
	}
	start := p.o.Now()
	ctx, cancel := context.WithTimeout(p.abortCtx, p.o.AttemptTimeout)
	defer cancel()
	type pending struct {
		route   *Route
		t       Target
		confirm func(context.Context) (bool, error)
	}
	started := make([][]pending, len(run))
	ok := make([]bool, len(run))
	for k := range run {
		ok[k] = true
		for _, r := range run[k].routes {
			for _, t := range r.Targets {
				confirm, _, err := t.Sink.(Starter).Start(ctx, run[k].ev)
				if err != nil {
					ok[k] = false
					break
				}
				started[k] = append(started[k], pending{r, t, confirm})
			}
			if !ok[k] {
				break
			}
		}
	}
	for k := range run {
		j := &run[k]
		for _, s := range started[k] {
			if !ok[k] {
				break
			}
			if _, err := s.confirm(ctx); err != nil {
				ok[k] = false
			}
		}
		if !ok[k] {
			p.process(*j) // retries with backoff, dead letter, ack
			continue
		}
		m := p.o.Metrics
		for _, s := range started[k] {
			dm := m.deliveredFor(s.route.Name, s.t.Kind)
			dm.delivered.Inc()
			dm.latency.Observe(p.o.Now().Sub(start).Seconds())
			logDelivered(p.o.Log, j.ev, s.route.Name, s.t.Kind, 1)
		}
		if p.o.Settled != nil {
			p.o.Settled(j.ev, true)
		}
		p.ack(j.msg)
	}
}
