package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// The worker of one route holds up to WorkerOptions.MaxPending items. Each goes, in the
// order the server delivered them (stream order), to the line of its incident key; a
// line applies its items one after the other, each only once the one before it was
// acknowledged or dead-lettered. An item that cannot be applied yet (route not ready,
// retryable failure) keeps its line waiting in memory (it is never handed back with a
// delay, which would let the next item of its key overtake it) while the other keys go
// on. One keep-alive loop renews every held item and needs the server's confirmation:
// when it has none for half the ack wait, every line stops at once (its Apply cancelled)
// and the held items are left to expire, so that the item is never applied by this
// replica while JetStream hands it to another. On shutdown every held item is returned
// (Nak, in stream order), never acknowledged.

// errKeepAliveLost stops a route's lines: the server did not confirm the keep-alives.
var errKeepAliveLost = errors.New("outbox: the keep-alives of the held items are not confirmed by NATS; the items are given up")

type item struct {
	seq    uint64 // stream sequence
	key    string
	stored time.Time
	ev     *zuul.Event
	bad    error // does not decode

	mu        sync.Mutex
	msg       jetstream.Msg // the latest delivery
	confirmed time.Time     // when the last confirmed keep-alive (or the delivery) was sent
}

func (it *item) current() jetstream.Msg {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.msg
}

type routeRun struct {
	ctx   context.Context // ends with shutdown, a lost pull or lost keep-alives
	o     *Outbox
	route string
	w     *WorkerOptions
	log   zerolog.Logger
	slots chan struct{} // Apply calls at once
	wg    sync.WaitGroup

	mu    sync.Mutex
	held  map[uint64]*item
	lines map[string][]*item // key -> its items, the head being worked on
	pin   string
}

func newRouteRun(ctx context.Context, o *Outbox, route string, w *WorkerOptions, log zerolog.Logger) *routeRun {
	return &routeRun{ctx: ctx, o: o, route: route, w: w, log: log, slots: make(chan struct{}, w.Parallel),
		held: map[uint64]*item{}, lines: map[string][]*item{}}
}

func (r *routeRun) pinID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pin
}

// add puts a delivered item at the end of its key's line (starting the line when it was
// idle). An item delivered again while held (its ack wait passed) only renews the handle.
func (r *routeRun) add(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		r.log.Warn().Err(err).Msg("outbox message lacking JetStream metadata; ignored")
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if pin := msg.Headers().Get("Nats-Pin-Id"); pin != "" {
		r.pin = pin
	}
	if it, ok := r.held[md.Sequence.Stream]; ok {
		it.mu.Lock()
		it.msg, it.confirmed = msg, now
		it.mu.Unlock()
		return
	}
	it := &item{seq: md.Sequence.Stream, stored: md.Timestamp, msg: msg, confirmed: now}
	it.ev, it.bad = decode(msg.Data())
	if it.bad != nil {
		it.key = fmt.Sprintf("\x00undecodable/%d", it.seq) // a line of its own
	} else {
		it.key = r.w.Key(r.route, it.ev)
	}
	r.held[it.seq] = it
	line := r.lines[it.key]
	r.lines[it.key] = append(line, it)
	if len(line) == 0 {
		r.wg.Add(1)
		go r.runLine(it.key)
	}
}

// runLine works the items of key one after the other until the line is empty or the run
// ends (then what is left stays held, to be returned).
func (r *routeRun) runLine(key string) {
	defer r.wg.Done()
	for r.ctx.Err() == nil {
		r.mu.Lock()
		it := r.lines[key][0]
		r.mu.Unlock()
		if !r.process(it) {
			return
		}
		r.mu.Lock()
		delete(r.held, it.seq)
		line := r.lines[key][1:]
		if len(line) == 0 {
			delete(r.lines, key)
			r.mu.Unlock()
			return
		}
		r.lines[key] = line
		r.mu.Unlock()
	}
}

// process applies it, retrying in place within its window; it reports whether the item
// is done with (acknowledged: applied or dead-lettered). false: the run ended first.
func (r *routeRun) process(it *item) bool {
	ctx, w, m, route := r.ctx, r.w, r.w.Metrics, r.route
	log := r.log.With().Str("id", it.current().Headers().Get(HeaderID)).Logger()
	for {
		err := w.Ready(route)
		if err == nil && w.ReadyItem != nil && it.bad == nil {
			err = w.ReadyItem(route, it.ev)
		}
		if err == nil {
			break
		}
		m.items.WithLabelValues(route, "deferred").Inc()
		log.Warn().Err(err).Stringer("delay", w.DeferDelay.Round(time.Millisecond)).Msg("outbox item deferred: its route cannot be applied yet")
		if !retry.Sleep(ctx, w.DeferDelay) {
			return false
		}
	}
	if it.bad != nil {
		return r.dead(log, it, fmt.Sprintf("outbox item does not decode: %v", it.bad))
	}
	deadline := it.stored.Add(w.RetryWindow)
	for attempt, long, short := 1, 0, 0; ; attempt++ {
		if ctx.Err() != nil { // select below picks at random among ready cases
			return false
		}
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		actx, cancel := context.WithTimeout(ctx, w.AttemptTimeout)
		again, err := w.Apply(actx, route, it.ev)
		cancel()
		<-r.slots
		if err == nil {
			m.items.WithLabelValues(route, "applied").Inc()
			m.latency.Observe(w.Now().Sub(it.stored).Seconds())
			log.Debug().Int("attempts", attempt).Msg("outbox item applied")
			r.ack(log, it)
			return true
		}
		if ctx.Err() != nil {
			return false // shutting down, or given up: the item is returned, never acknowledged
		}
		if !again {
			return r.dead(log, it, fmt.Sprintf("status page: failed for good: %v", err))
		}
		var wait time.Duration
		if w.ShortRetry != nil && w.ShortRetry(err) {
			wait = w.ShortBackoff.Delay(short)
			short++
		} else {
			wait = w.Backoff.Delay(long)
			long++
		}
		if !w.Now().Add(wait).Before(deadline) {
			return r.dead(log, it, fmt.Sprintf("status page: retry window of %s passed after %d attempts: %v", w.RetryWindow, attempt, err))
		}
		m.retries.WithLabelValues(route).Inc()
		log.Warn().Err(err).Int("attempt", attempt).Stringer("backoff", wait.Round(time.Millisecond)).Time("stored", it.stored).Msg("outbox item not applied, retrying")
		if !retry.Sleep(ctx, wait) {
			return false
		}
	}
}

func (r *routeRun) dead(log zerolog.Logger, it *item, reason string) bool {
	dl := delivery.DeadLetter{Topic: it.current().Subject(), Payload: it.current().Data(), ID: it.current().Headers().Get(HeaderID),
		Route: r.route, Sink: "statuspage", Reason: reason}
	if !r.o.deadLetter(r.ctx, r.w, log, dl) {
		return false
	}
	r.ack(log, it)
	return true
}

// ack removes the item; the server confirms it (a lost ack would apply the item again).
// An ack nobody answers (the consumer's leader lost, a new one being elected: "no
// responders", a timeout) is sent again for up to the ack wait, after which the item would
// come back anyway: a node lost in a cluster then costs no second application.
func (r *routeRun) ack(log zerolog.Logger, it *item) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), max(r.o.cfg.AckWait, r.o.cfg.Timeout))
	defer cancel()
	err := retry.Until(ctx, retry.Backoff{Min: 100 * time.Millisecond, Max: time.Second}, func(context.Context) error {
		actx, cancel := context.WithTimeout(ctx, r.o.cfg.Timeout)
		defer cancel()
		return it.current().DoubleAck(actx)
	}, nil, nil)
	if err != nil {
		log.Warn().Err(err).Msg("outbox item done, but its removal was not confirmed; it may be applied again (harmless)")
	}
}

// keepAlive renews every held item every AckWait/4 with a keep-alive the server confirms
// (+WPI as a request: the server answers once it processed it). An item whose last
// confirmed keep-alive was sent more than AckWait/2 ago may be handed to another replica
// soon: lost is called, which stops every line of the route.
func (r *routeRun) keepAlive(lost func(error)) {
	every, limit := r.o.cfg.AckWait/4, r.o.cfg.AckWait/2
	t := time.NewTicker(every)
	defer t.Stop()
	nc := r.o.js.Conn()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		items := make([]*item, 0, len(r.held))
		for _, it := range r.held {
			items = append(items, it)
		}
		r.mu.Unlock()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, it := range items {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				msg := it.current()
				sent := time.Now()
				ctx, cancel := context.WithTimeout(r.ctx, min(every, r.o.cfg.Timeout))
				defer cancel()
				if _, err := nc.RequestWithContext(ctx, msg.Reply(), []byte("+WPI")); err == nil {
					it.mu.Lock()
					if it.msg == msg {
						it.confirmed = sent
					}
					it.mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, it := range items {
			it.mu.Lock()
			since := time.Since(it.confirmed)
			it.mu.Unlock()
			r.mu.Lock()
			_, still := r.held[it.seq]
			r.mu.Unlock()
			if still && since > limit && r.ctx.Err() == nil {
				r.log.Error().Stringer("unconfirmed_for", since.Round(time.Millisecond)).Int("held", len(items)).
					Msg("outbox: NATS does not confirm the keep-alives; stopping the work on this route's items before JetStream hands them to another replica")
				lost(errKeepAliveLost)
				return
			}
		}
	}
}

// abandon forgets the held items (they expire and come back); counted as given up.
func (r *routeRun) abandon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.held); n > 0 {
		r.w.Metrics.items.WithLabelValues(r.route, "abandoned").Add(float64(n))
	}
	r.held = map[uint64]*item{}
}

// returnAll hands every held item back (Nak, in stream order, each confirmed by the
// server, so that they are redelivered in that order); it reports whether all were.
func (r *routeRun) returnAll() bool {
	r.mu.Lock()
	items := make([]*item, 0, len(r.held))
	for _, it := range r.held {
		items = append(items, it)
	}
	r.held = map[uint64]*item{}
	r.mu.Unlock()
	slices.SortFunc(items, func(a, b *item) int { return cmp.Compare(a.seq, b.seq) })
	nc := r.o.js.Conn()
	all := true
	for _, it := range items {
		ctx, cancel := context.WithTimeout(context.Background(), r.o.cfg.Timeout)
		_, err := nc.RequestWithContext(ctx, it.current().Reply(), []byte("-NAK"))
		cancel()
		if err != nil {
			all = false
			r.log.Warn().Err(err).Uint64("seq", it.seq).Msg("outbox item not returned; it comes back after the ack wait")
		}
	}
	if len(items) > 0 {
		r.log.Info().Int("items", len(items)).Msg("outbox items returned to the stream")
	}
	return all
}
