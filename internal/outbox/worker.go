package outbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// WorkerOptions configure Run; zero values get the documented defaults.
type WorkerOptions struct {
	// Apply applies one item (the status page sink of its route). retry=true: not
	// applied, try the same item again; an error with retry=false: it never will apply.
	// Applying an item twice must be harmless (it is, after a crash between applying and
	// acknowledging).
	Apply func(ctx context.Context, route string, ev *zuul.Event) (retry bool, err error)
	// Ready says whether route's items can be applied now; an error (e.g. the status page
	// lacks a name the route uses) defers the item by DeferDelay (the route's later items
	// wait behind it; other routes go on). nil = always ready.
	Ready func(route string) error
	// DeadLetter records an item that failed for good or whose retry window passed; it is
	// retried until recorded, then the item is removed. nil = logged only.
	DeadLetter func(ctx context.Context, dl delivery.DeadLetter) error
	// RetryWindow is how long after it was stored an item is retried; <= 0 = 24h.
	RetryWindow time.Duration
	// Backoff between attempts of one item; zero = 1s doubling to 5m.
	Backoff retry.Backoff
	// AttemptTimeout bounds one Apply; <= 0 = 1m.
	AttemptTimeout time.Duration
	// DeferDelay is how long an item of a route that is not ready waits; <= 0 = 1m.
	DeferDelay time.Duration
	Log        zerolog.Logger
	Metrics    *Metrics // nil: not counted
	Now        func() time.Time
}

func (w *WorkerOptions) defaults() {
	if w.RetryWindow <= 0 {
		w.RetryWindow = 24 * time.Hour
	}
	if w.Backoff.Min <= 0 {
		w.Backoff.Min = time.Second
	}
	if w.Backoff.Max < w.Backoff.Min {
		w.Backoff.Max = max(5*time.Minute, w.Backoff.Min)
	}
	if w.AttemptTimeout <= 0 {
		w.AttemptTimeout = time.Minute
	}
	if w.DeferDelay <= 0 {
		w.DeferDelay = time.Minute
	}
	if w.Metrics == nil {
		w.Metrics = NewMetrics(nil)
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.Ready == nil {
		w.Ready = func(string) error { return nil }
	}
}

// consumer binds the durable consumer of route that every replica shares. MaxAckPending
// 1 keeps one item of the route in flight for the whole deployment, so the items of one
// incident key (indeed of the route) are applied in the order they were stored; status
// page work is low volume. One consumer per route (work-queue consumers must not
// overlap) keeps a route that cannot be applied from holding back the others.
func (o *Outbox) consumer(ctx context.Context, route string) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	return o.js.CreateOrUpdateConsumer(ctx, o.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       o.cfg.Consumer + "-" + route,
		Description:   "zuul-bridge: applies route " + route + " of the outbox to the status page",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.cfg.AckWait,
		MaxAckPending: 1,
		MaxDeliver:    -1,
		FilterSubject: o.Subject(route),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
}

// Run applies the outbox items of routes until ctx is done, one worker per route. Errors
// of the NATS server (down, no consumer yet) are retried; Run returns only with ctx.
func (o *Outbox) Run(ctx context.Context, routes []string, w WorkerOptions) {
	w.defaults()
	log := w.Log.With().Str("component", "outbox").Logger()
	log.Info().Str("stream", o.cfg.Stream).Strs("routes", routes).Dur("retry_window", w.RetryWindow).Msg("outbox worker started")
	o.warnOrphans(ctx, routes, log)
	var wg sync.WaitGroup
	for _, route := range routes {
		wg.Go(func() { o.runRoute(ctx, route, &w, log.With().Str("route", route).Logger()) })
	}
	wg.Wait()
}

// warnOrphans names the routes no longer in the rules whose items are still stored: the
// backlog alert counts them, and only the operator can say they are not wanted.
func (o *Outbox) warnOrphans(ctx context.Context, routes []string, log zerolog.Logger) {
	orphans, err := o.Orphans(ctx, routes)
	if err != nil {
		log.Debug().Err(err).Msg("could not look for items of removed routes")
		return
	}
	for route, n := range orphans {
		log.Warn().Str("route", route).Uint64("items", n).
			Str("purge", fmt.Sprintf("nats stream purge %s --subject %s; nats consumer rm %s %s-%s", o.cfg.Stream, o.Subject(route), o.cfg.Stream, o.cfg.Consumer, route)).
			Dur("stream_max_age", o.stream.CachedInfo().Config.MaxAge).
			Msg("outbox items of a route that is not in the rules: nobody applies them; purge them, or the stream drops them after its max age")
	}
}

func (o *Outbox) runRoute(ctx context.Context, route string, w *WorkerOptions, log zerolog.Logger) {
	for ctx.Err() == nil {
		err := o.pull(ctx, route, w, log)
		if ctx.Err() != nil {
			return
		}
		log.Warn().Err(err).Msg("outbox consumer lost; binding it again")
		retry.Sleep(ctx, time.Second)
	}
}

// pull binds the route's consumer and applies its items until ctx is done (nil) or the
// pull fails (the consumer was deleted, the server lost it).
func (o *Outbox) pull(ctx context.Context, route string, w *WorkerOptions, log zerolog.Logger) error {
	var cons jetstream.Consumer
	err := retry.Until(ctx, retry.Backoff{Min: time.Second, Max: 30 * time.Second}, func(ctx context.Context) (err error) {
		cons, err = o.consumer(ctx, route)
		return err
	}, nil, func(err error, wait time.Duration) {
		log.Warn().Err(err).Dur("retry_in", wait).Msg("outbox consumer not available yet")
	})
	if err != nil {
		return nil
	}
	// One long pull: the server hands over the next item as soon as the previous one is
	// acknowledged, without a request per item.
	it, err := cons.Messages(jetstream.PullMaxMessages(1), jetstream.PullExpiry(30*time.Second))
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		o.handle(ctx, route, w, log, msg)
	}
}

// handle applies one item of route (its consumer takes only that route's subject),
// retrying in place (and keeping it alive) within its window.
func (o *Outbox) handle(ctx context.Context, route string, w *WorkerOptions, log zerolog.Logger, msg jetstream.Msg) {
	m := w.Metrics
	stored := w.Now()
	if md, err := msg.Metadata(); err == nil {
		stored = md.Timestamp
	}
	log = log.With().Str("id", msg.Headers().Get(HeaderID)).Logger()
	dead := func(reason string) {
		dl := delivery.DeadLetter{Topic: msg.Subject(), Payload: msg.Data(), ID: msg.Headers().Get(HeaderID),
			Route: route, Sink: "statuspage", Reason: reason}
		if o.deadLetter(ctx, w, log, msg, dl) {
			o.ack(ctx, log, msg)
		}
	}
	if err := w.Ready(route); err != nil {
		m.items.WithLabelValues(route, "deferred").Inc()
		log.Warn().Err(err).Dur("delay", w.DeferDelay).Msg("outbox item deferred: its route cannot be applied yet")
		_ = msg.NakWithDelay(w.DeferDelay)
		return
	}
	ev, err := decode(msg.Data())
	if err != nil {
		dead(fmt.Sprintf("outbox item does not decode: %v", err))
		return
	}
	// Keep the item ours while it is worked on, also during the waits between attempts.
	alive, stopAlive := context.WithCancel(ctx)
	defer stopAlive()
	go func() {
		t := time.NewTicker(o.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-alive.Done():
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	deadline := stored.Add(w.RetryWindow)
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, w.AttemptTimeout)
		again, err := w.Apply(actx, route, ev)
		cancel()
		if err == nil {
			stopAlive()
			m.items.WithLabelValues(route, "applied").Inc()
			m.latency.Observe(w.Now().Sub(stored).Seconds())
			log.Debug().Int("attempts", attempt+1).Msg("outbox item applied")
			o.ack(ctx, log, msg)
			return
		}
		if ctx.Err() != nil {
			stopAlive()
			_ = msg.Nak() // shutting down: another replica takes it at once
			return
		}
		if !again {
			stopAlive()
			dead(fmt.Sprintf("status page: failed for good: %v", err))
			return
		}
		wait := w.Backoff.Delay(attempt)
		if !w.Now().Add(wait).Before(deadline) {
			stopAlive()
			dead(fmt.Sprintf("status page: retry window of %s passed after %d attempts: %v", w.RetryWindow, attempt+1, err))
			return
		}
		m.retries.WithLabelValues(route).Inc()
		log.Warn().Err(err).Int("attempt", attempt+1).Dur("backoff", wait).Time("stored", stored).Msg("outbox item not applied, retrying")
		if !retry.Sleep(ctx, wait) {
			stopAlive()
			_ = msg.Nak()
			return
		}
	}
}

// deadLetter records dl until it is recorded, refused for good (then it is dropped with a
// count) or ctx ends (then the item is left to come again); it reports whether the item
// may be removed.
func (o *Outbox) deadLetter(ctx context.Context, w *WorkerOptions, log zerolog.Logger, msg jetstream.Msg, dl delivery.DeadLetter) bool {
	recorded := func() bool {
		w.Metrics.items.WithLabelValues(dl.Route, "dead_lettered").Inc()
		log.Error().Str("reason", dl.Reason).Msg("outbox item dead-lettered")
		return true
	}
	if w.DeadLetter == nil {
		return recorded()
	}
	// The waits stay below the ack wait, and the item is kept ours through them.
	b := retry.Backoff{Min: w.Backoff.Min, Max: min(w.Backoff.Max, o.cfg.AckWait/3)}
	err := retry.Until(ctx, b, func(ctx context.Context) error {
		dctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
		defer cancel()
		return w.DeadLetter(dctx, dl)
	}, delivery.IsPermanent, func(err error, wait time.Duration) {
		log.Warn().Err(err).Dur("retry_in", wait).Msg("dead letter not recorded, retrying")
		_ = msg.InProgress()
	})
	if err != nil && delivery.IsPermanent(err) {
		// Retrying cannot record it (e.g. the dead-letter subject is denied), and holding
		// the item would stall its key for good: the loss is logged and counted, and the
		// item removed, as the delivery path does.
		w.Metrics.dlFail.WithLabelValues(dl.Route).Inc()
		log.Error().Err(err).Str("topic", dl.Topic).Str("id", dl.ID).Str("route", dl.Route).Str("sink", dl.Sink).
			Int("size", len(dl.Payload)).Str("reason", dl.Reason).Msg("dead letter refused for good; outbox item dropped")
		return true
	}
	if err != nil {
		_ = msg.Nak()
		return false
	}
	return recorded()
}

// ack removes the item; the server confirms it (a lost ack would apply the item again).
func (o *Outbox) ack(ctx context.Context, log zerolog.Logger, msg jetstream.Msg) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.Timeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		log.Warn().Err(err).Msg("outbox item applied, but its removal was not confirmed; it may be applied again (harmless)")
	}
}
