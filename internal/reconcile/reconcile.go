// Package reconcile closes the gaps of Zuul's MQTT reports with zuul-web's REST API
// at start and then every Interval it reads the buildsets of the configured
// tenants and pipelines that are newer than a per-target cursor, turns each completed one
// into the zuul.Event the MQTT path would have produced (zuulweb.ToEvent, same Event.ID)
// and hands the ones no source applied before to Submit, i.e. the bridge's rules and
// sinks. Successes found this way resolve incidents (SCS reports only failures over MQTT);
// failures found this way were lost on the MQTT path and are marked Recovered.
//
// It does not decide what to do with an event (that is Submit's) and does not talk MQTT.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
)

// Submit routes an event through the bridge's rules and sinks and returns when it
// settled. An error means "not settled": the event is offered again next round, and
// nothing newer of the same target is offered before it (order is kept, so a failure
// cannot land after the success that followed it).
//
// An error wrapping ErrDeferred means another path (the MQTT intake) holds the same
// report: it is not an error, the buildset is looked at again next round. An error
// wrapping ErrNotApplied means it settled through a dead letter.
type Submit func(ctx context.Context, ev *zuul.Event) error

// ErrDeferred: Submit found the report held by another path, which delivers it.
var ErrDeferred = errors.New("report held by another path; deferred")

// ErrNotApplied: Submit settled the report by dead-lettering a delivery that failed for
// good. The round goes on (the dead letter records it), but the report is not remembered
// as applied: an MQTT copy arriving later is delivered, and a later read-back of it is
// offered again.
var ErrNotApplied = errors.New("report dead-lettered, not applied")

// Defaults of Options.
const (
	DefaultInterval = 5 * time.Minute
	DefaultLookback = 24 * time.Hour
	// DefaultSettle is how long a failure's MQTT report is given after its buildset ended
	// before zuul-web's copy is recovered in its place.
	DefaultSettle = 10 * time.Minute
	// pageSize is zuul-web's default limit; a shorter page is the last one.
	pageSize = 50
)

// Options configure New. Client, Store and Submit are required.
type Options struct {
	Client  *zuulweb.Client
	Targets []Target
	// Interval between rounds (Run); default 5m.
	Interval time.Duration
	// Lookback bounds a first start (no cursor yet): only buildsets triggered within it are
	// considered. It also bounds how long a buildset without result holds the cursor back:
	// one older than this is given up (a database write Zuul dropped stays null forever).
	// Default 24h.
	Lookback time.Duration
	// Settle: a failure is recovered from zuul-web only once its buildset ended this long
	// ago, so that an MQTT report still on its way (a backlog in the broker, the bridge's
	// own queue) is not published twice and wrongly marked recovered. 0 = DefaultSettle,
	// < 0 = no wait.
	Settle  time.Duration
	Store   Store
	Submit  Submit
	Log     zerolog.Logger
	Metrics *Metrics // nil: metrics are kept but not registered anywhere
	Now     func() time.Time
	// Ran, if set, is told the end time of every completed buildset the reconciler reads,
	// and before a target's first pass that of its newest completed buildset in zuul-web
	// (a zero time when there is none), so "when did the pipeline last run" is known from
	// the start; see seed.
	Ran func(tenant, pipeline string, end time.Time)
}

// Reconciler reads zuul-web and submits what the MQTT path missed. Round and Run may be
// called from one goroutine at a time; concurrent Rounds are serialised.
type Reconciler struct {
	o      Options
	round  sync.Mutex
	seeded map[Target]bool // guarded by round
}

// New builds a Reconciler; it panics on a missing Client, Store or Submit, which is a
// wiring bug, not a runtime condition.
func New(o Options) *Reconciler {
	if o.Client == nil || o.Store == nil || o.Submit == nil {
		panic("reconcile: New needs Client, Store and Submit")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Lookback <= 0 {
		o.Lookback = DefaultLookback
	}
	if o.Settle == 0 {
		o.Settle = DefaultSettle
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	o.Metrics.initFor(o.Targets, o.Now)
	o.Log = o.Log.With().Str("component", "reconcile").Logger()
	return &Reconciler{o: o}
}

// Run does a Round at once and then every Interval until ctx is done; it returns nil
// then. A failed Round is logged and counted, and the next one retries.
func (r *Reconciler) Run(ctx context.Context) error {
	tick := time.NewTicker(r.o.Interval)
	defer tick.Stop()
	for {
		if err := r.Round(ctx); err != nil && ctx.Err() == nil {
			r.o.Log.Warn().Err(err).Msg("reconcile round failed, retrying next round")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Round makes one pass over all targets. A target's failure does not stop the others;
// the errors are joined.
func (r *Reconciler) Round(ctx context.Context) error {
	r.round.Lock()
	defer r.round.Unlock()
	start := r.o.Now()
	r.o.Metrics.rounds.Inc()
	var total stats
	var errs []error
	for _, t := range r.o.Targets {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		r.seedOnce(ctx, t)
		st, err := r.target(ctx, t)
		total.add(st)
		l := r.o.Log.With().Str("tenant", t.Tenant).Str("pipeline", t.Pipeline).Logger()
		if err != nil {
			r.o.Metrics.errors.WithLabelValues(t.Tenant, t.Pipeline).Inc()
			errs = append(errs, fmt.Errorf("reconcile %s: %w", t, err))
			l.Warn().Err(err).Object("found", st).Msg("reconcile target failed")
			continue
		}
		l.Debug().Object("found", st).Msg("reconciled target")
	}
	r.o.Log.Info().Int("targets", len(r.o.Targets)).Object("found", total).Int("errors", len(errs)).
		Stringer("took", r.o.Now().Sub(start).Round(time.Millisecond)).Msg("reconcile round")
	return errors.Join(errs...)
}

// stats says what a pass found, for the round's log line.
type stats struct {
	listed, submitted, recovered, seen, pending, dequeued, old, abandoned int
	settling, deferred, deadLettered                                      int
	cursorFrom, cursorTo                                                  int64
}

func (s *stats) add(o stats) {
	s.listed += o.listed
	s.submitted += o.submitted
	s.recovered += o.recovered
	s.seen += o.seen
	s.pending += o.pending
	s.dequeued += o.dequeued
	s.old += o.old
	s.abandoned += o.abandoned
	s.settling += o.settling
	s.deferred += o.deferred
	s.deadLettered += o.deadLettered
}

func (s stats) MarshalZerologObject(e *zerolog.Event) {
	e.Int("listed", s.listed).Int("submitted", s.submitted).Int("recovered", s.recovered).
		Int("already_seen", s.seen).Int("pending", s.pending).Int("dequeued", s.dequeued)
	if s.old > 0 {
		e.Int("before_lookback", s.old)
	}
	if s.settling > 0 {
		e.Int("settling", s.settling)
	}
	if s.deferred > 0 {
		e.Int("in_flight_elsewhere", s.deferred)
	}
	if s.deadLettered > 0 {
		e.Int("dead_lettered", s.deadLettered)
	}
	if s.abandoned > 0 {
		e.Int("abandoned", s.abandoned)
	}
	if s.cursorTo != 0 {
		e.Int64("cursor_from", s.cursorFrom).Int64("cursor_to", s.cursorTo)
	}
}
