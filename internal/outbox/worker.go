package outbox

import (
	"context"
	"errors"
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
	// ReadyItem says whether one item can be applied now (e.g. the status page lacks the
	// component derived from its job); an error defers it by DeferDelay like Ready, which
	// holds back its key's later items only: other keys go on. Deferring does not count
	// against the retry window. nil = always ready.
	ReadyItem func(route string, ev *zuul.Event) error
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
	// Key is the incident key of an item: the items of one key are applied one at a time
	// in the order they were stored; items of different keys do not wait for each other.
	// nil = one key per route (the route's items one at a time, in order).
	Key func(route string, ev *zuul.Event) string
	// ShortRetry names the retryable errors that are retried on ShortBackoff rather than
	// Backoff (another replica works the same key right now). nil = none.
	ShortRetry func(error) bool
	// ShortBackoff paces the retries of ShortRetry's errors; zero = 1s doubling to 5s.
	ShortBackoff retry.Backoff
	// MaxPending bounds the items of a route a replica holds at once (waiting in their
	// key's line or being applied): the consumer's MaxAckPending; <= 0 = 256.
	MaxPending int
	// Parallel bounds the Apply calls of a route running at once; <= 0 = 8.
	Parallel int
	Log      zerolog.Logger
	Metrics  *Metrics // nil: not counted
	Now      func() time.Time
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
	if w.ShortBackoff.Min <= 0 {
		w.ShortBackoff.Min = time.Second
	}
	if w.ShortBackoff.Max < w.ShortBackoff.Min {
		w.ShortBackoff.Max = max(5*time.Second, w.ShortBackoff.Min)
	}
	if w.MaxPending <= 0 {
		w.MaxPending = 256
	}
	if w.Parallel <= 0 {
		w.Parallel = 8
	}
	if w.Key == nil {
		w.Key = func(string, *zuul.Event) string { return "" }
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

// pinGroup is the priority group of the route consumers: one replica at a time (the
// pinned one) receives a route's items.
const pinGroup = "bridge"

// pinnedTTL is how long a replica that stopped pulling (crashed) stays pinned: long enough
// that the items it held are due for redelivery, in stream order, before another replica
// receives new ones. Its items expire at most AckWait after its last keep-alive, and its
// last keep-alive is at most one pull renewal (pullExpiry, a quarter of this) after its
// last pull: so it must exceed 4/3 of the ack wait. It is also what a crashed replica
// costs the route (no hand-over), so it is kept no longer than that: 1.5 x AckWait.
func (o *Outbox) pinnedTTL() time.Duration { return max(o.cfg.AckWait*3/2, 3*time.Second) }

// pullExpiry renews the pull (and with it the pin) well within pinnedTTL.
func (o *Outbox) pullExpiry() time.Duration {
	return min(30*time.Second, max(time.Second, o.pinnedTTL()/4))
}

// consumer binds the durable consumer of route that every replica shares. It is pinned
// (priority policy pinned_client): one replica at a time receives the route's items, up
// to maxPending of them, and orders them per incident key in memory; a second replica
// takes over when the first stops pulling for pinnedTTL (or hands the pin over when it
// stops). So the items of one key are never applied by two replicas out of order. One
// consumer per route (work-queue consumers must not overlap) keeps a route that cannot be
// applied from holding back the others.
//
// A NATS server before 2.11 does not know priority policies and drops them silently (the
// consumer reads back without one): then the consumer allows one unacknowledged item for
// the whole deployment, as before pinning, which keeps every key in order at the cost of
// parallelism; pinned says which it is.
func (o *Outbox) consumer(ctx context.Context, route string, maxPending int) (cons jetstream.Consumer, pinned bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	cfg := jetstream.ConsumerConfig{
		Durable:        o.consumerName(route),
		Description:    "zuul-bridge: applies route " + route + " of the outbox to the status page",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        o.cfg.AckWait,
		MaxAckPending:  maxPending,
		MaxDeliver:     -1,
		FilterSubject:  o.Subject(route),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{pinGroup},
		PinnedTTL:      o.pinnedTTL(),
	}
	cons, err = o.js.CreateOrUpdateConsumer(ctx, o.cfg.Stream, cfg)
	if err != nil || cons.CachedInfo().Config.PriorityPolicy == jetstream.PriorityPolicyPinned {
		return cons, err == nil, err
	}
	cfg.PriorityPolicy, cfg.PriorityGroups, cfg.PinnedTTL, cfg.MaxAckPending = jetstream.PriorityPolicyNone, nil, 0, 1
	cons, err = o.js.CreateOrUpdateConsumer(ctx, o.cfg.Stream, cfg)
	return cons, false, err
}

func (o *Outbox) consumerName(route string) string { return o.cfg.Consumer + "-" + route }

// Run applies the outbox items of routes until ctx is done, one worker per route. Errors
// of the NATS server (down, no consumer yet) are retried; Run returns only with ctx.
func (o *Outbox) Run(ctx context.Context, routes []string, w WorkerOptions) {
	w.defaults()
	log := w.Log.With().Str("component", "outbox").Logger()
	log.Info().Str("stream", o.cfg.Stream).Strs("routes", routes).Stringer("retry_window", w.RetryWindow.Round(time.Millisecond)).Msg("outbox worker started")
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
			Stringer("stream_max_age", o.stream.CachedInfo().Config.MaxAge).
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
// pull fails (the consumer was deleted, the server lost it, the keep-alives of the held
// items are not confirmed).
func (o *Outbox) pull(ctx context.Context, route string, w *WorkerOptions, log zerolog.Logger) error {
	var cons jetstream.Consumer
	var pinned bool
	err := retry.Until(ctx, retry.Backoff{Min: time.Second, Max: 30 * time.Second}, func(ctx context.Context) (err error) {
		cons, pinned, err = o.consumer(ctx, route, w.MaxPending)
		return err
	}, nil, func(err error, wait time.Duration) {
		log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Msg("outbox consumer not available yet")
	})
	if err != nil {
		return nil
	}
	// Heartbeats a third of the pull's life: a lost consumer leader (a NATS node crashed)
	// is noticed after two missed ones, seconds, not nats.go's default of 15 s each.
	hb := jetstream.PullHeartbeat(max(500*time.Millisecond, o.pullExpiry()/3))
	pullOpts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(w.MaxPending), jetstream.PullExpiry(o.pullExpiry()),
		jetstream.PullPriorityGroup(pinGroup), hb}
	if !pinned {
		if o.unpinnedLogged.CompareAndSwap(false, true) {
			log.Warn().Msg("the NATS server does not pin consumers (before 2.11): the outbox applies one item at a time " +
				"for the whole deployment to keep each incident key in order; upgrade NATS to apply keys in parallel")
		}
		one := *w
		one.MaxPending, one.Parallel = 1, 1
		w = &one
		pullOpts = []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(1), jetstream.PullExpiry(o.pullExpiry()), hb}
	}
	// One long pull: the server hands over items as they come, up to MaxPending unacked.
	// The loop below never blocks on the work, so the pull (and the pin) stays renewed.
	it, err := cons.Messages(pullOpts...)
	if err != nil {
		return err
	}
	defer it.Stop()
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	stopIt := context.AfterFunc(runCtx, it.Stop)
	defer stopIt()
	r := newRouteRun(runCtx, o, route, w, log)
	keep := make(chan struct{})
	go func() { defer close(keep); r.keepAlive(func(err error) { stopRun(err) }) }()
	for {
		msg, err := it.Next()
		if runCtx.Err() != nil {
			break
		}
		if err != nil {
			stopRun(err)
			break
		}
		r.add(msg)
	}
	<-keep
	r.wg.Wait() // every line stopped: what is held stays held
	cause := context.Cause(runCtx)
	if errors.Is(cause, errKeepAliveLost) {
		// NATS does not confirm: the held items are left to expire, and come back (to
		// whichever replica pulls) in stream order after the ack wait.
		r.abandon()
		return cause
	}
	returned := r.returnAll()
	if ctx.Err() != nil {
		if returned {
			o.handOver(cons, route, r.pinID(), log)
		}
		return nil
	}
	return cause
}

// handOver unpins this replica once it returned every item it held, so that another
// takes the route at once instead of after the pinned TTL. Only its own pin is removed.
func (o *Outbox) handOver(cons jetstream.Consumer, route, pin string, log zerolog.Logger) {
	if pin == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.Timeout)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	for _, g := range info.PriorityGroups {
		if g.Group == pinGroup && g.PinnedClientID == pin {
			if err := o.stream.UnpinConsumer(ctx, o.consumerName(route), pinGroup); err != nil {
				log.Debug().Err(err).Msg("outbox route not handed over; another replica takes it after the pinned TTL")
			}
		}
	}
}

// deadLetter records dl until it is recorded, refused for good (then it is dropped with a
// count) or ctx ends (then the item is returned); it reports whether the item may be
// removed. The item is kept alive meanwhile by its route's keep-alive loop.
func (o *Outbox) deadLetter(ctx context.Context, w *WorkerOptions, log zerolog.Logger, dl delivery.DeadLetter) bool {
	recorded := func() bool {
		w.Metrics.items.WithLabelValues(dl.Route, "dead_lettered").Inc()
		log.Error().Str("reason", dl.Reason).Msg("outbox item dead-lettered")
		return true
	}
	if w.DeadLetter == nil {
		return recorded()
	}
	b := retry.Backoff{Min: w.Backoff.Min, Max: min(w.Backoff.Max, 30*time.Second)}
	err := retry.Until(ctx, b, func(ctx context.Context) error {
		dctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
		defer cancel()
		return w.DeadLetter(dctx, dl)
	}, delivery.IsPermanent, func(err error, wait time.Duration) {
		log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Msg("dead letter not recorded, retrying")
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
	return err == nil && recorded()
}
