// Package pagework is the status page side of the bridge as it runs: the delivery target
// of every `statuspage:` route (it stores the report in the JetStream outbox), and the
// background set-up of everything that needs a server (the outbox stream, the incident
// key bucket, the status page catalogue), after which it runs the incident manager's loops
// and the outbox worker. Nothing on the intake path waits for it. On a NATS server that lacks JetStream the
// status page routes do not start and say why (package features); NATS routes run.
package pagework

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/features"
	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Feature is the name the features set knows the status page routes by.
const Feature = "status page routes"

// Options configure New.
type Options struct {
	Outbox   outbox.Config
	KVBucket string // the incident key bucket
	// Replicas of the outbox stream and the incident key bucket (BRIDGE_NATS_JETSTREAM_REPLICAS);
	// existing ones with fewer are scaled up. <= 0: Outbox.Replicas.
	Replicas int
	// ReplicaCheck reports a stream or bucket NATS refused to scale up (log, gauge, /readyz).
	ReplicaCheck *kvstore.ReplicaCheck
	// RetryWindow: how long an outbox item is retried, counted from when it was stored.
	RetryWindow time.Duration
	// AttemptTimeout bounds one application of an item.
	AttemptTimeout time.Duration
	// StartupBackoff paces the waits for NATS at set-up; zero = 1s to 30s.
	StartupBackoff retry.Backoff
	// AfterJetStream runs in the background once JetStream is known to be there (the
	// login's refresh loop, whose chain lives in a bucket), until ctx is done.
	AfterJetStream func(ctx context.Context)

	NATS       *nats.Conn
	Manager    *incident.Manager
	DeadLetter func(context.Context, delivery.DeadLetter) error
	Features   *features.Set
	Registerer prometheus.Registerer
	Log        zerolog.Logger
}

// Work is the status page side of one process.
type Work struct {
	o       Options
	log     zerolog.Logger
	metrics *outbox.Metrics

	// sinks are the routes in force, by name: built by Target before Run, replaced as a
	// whole by SetRoutes (reload.go).
	sinksP atomic.Pointer[map[string]*incident.Sink]
	reload reloader

	box     atomic.Pointer[outbox.Outbox] // set once the stream is open
	noJS    atomic.Pointer[error]         // set when NATS turned out to have no JetStream
	started atomic.Bool                   // the manager knows the catalogue and the open incidents

	names *unknownNames
}

// New builds the work; add every route with Target, then Run it.
func New(o Options) *Work {
	if o.Replicas <= 0 {
		o.Replicas = o.Outbox.Replicas
	}
	o.Outbox.Replicas, o.Outbox.ReplicaCheck = o.Replicas, o.ReplicaCheck
	if o.StartupBackoff == (retry.Backoff{}) {
		o.StartupBackoff = retry.Backoff{Min: time.Second, Max: 30 * time.Second}
	}
	log := o.Log.With().Str("component", "statuspage").Logger()
	o.Features.Expect(Feature)
	w := &Work{o: o, log: log, metrics: outbox.NewMetrics(o.Registerer),
		names: newUnknownNames(log, o.Registerer), reload: newReloader()}
	w.sinksP.Store(&map[string]*incident.Sink{})
	return w
}

// sinks returns the routes in force (do not modify the map).
func (w *Work) sinks() map[string]*incident.Sink { return *w.sinksP.Load() }

// Target is the delivery sink of a route's status page work; call it before Run (a reload
// uses TargetOf and SetRoutes).
func (w *Work) Target(route string, s *incident.Sink) delivery.Sink {
	m := w.sinks()
	m[route] = s
	return w.TargetOf(route)
}

// TargetOf is the delivery sink of route's status page work: it stores the route's
// reports in the outbox, whatever its incident sink is now.
func (w *Work) TargetOf(route string) delivery.Sink { return &target{w: w, route: route} }

type target struct {
	w     *Work
	route string
}

// errNotOpen: the report stays unacknowledged until the outbox is open.
var errNotOpen = errors.New("status page work: the outbox stream is not open yet")

func (t *target) Send(ctx context.Context, ev *zuul.Event) (bool, error) {
	confirm, retry, err := t.Start(ctx, ev)
	if err != nil {
		return retry, err
	}
	return confirm(ctx)
}

// Start lets a run of reports be stored in the outbox with one wait (delivery.Starter).
func (t *target) Start(ctx context.Context, ev *zuul.Event) (func(context.Context) (bool, error), bool, error) {
	if ev.Outcome != zuul.OutcomeFailure && ev.Outcome != zuul.OutcomeSuccess {
		// neither opens nor resolves anything: nothing to store
		return func(context.Context) (bool, error) { return false, nil }, false, nil
	}
	box := t.w.box.Load()
	if box == nil {
		if noJS := t.w.noJS.Load(); noJS != nil {
			// For good: the report is dead-lettered at once and holds nothing back.
			return nil, false, fmt.Errorf("status page route %s: %s needs JetStream: %w", t.route, Feature, *noJS)
		}
		return nil, true, errNotOpen
	}
	return box.Sink(t.route).Start(ctx, ev)
}

// CanStart: reports are started in runs only once the outbox is open (delivery.MaybeStarter);
// before, a report takes the full path, where its retries wait for the outbox without
// publishing its NATS messages again.
func (t *target) CanStart() bool { return t.w.box.Load() != nil }

// Run sets up the status page side in the background, retrying whatever is not there
// yet, and then runs the manager's loops and the outbox worker until ctx is done.
func (w *Work) Run(ctx context.Context) {
	// A status page URL without a statuspage: route: nothing to set up until a reload
	// brings one.
	if !w.reload.awaitRoutes(ctx, func() bool { return len(w.sinks()) > 0 }) {
		return
	}
	var bg sync.WaitGroup
	defer bg.Wait()
	// 1. The outbox stream.
	box, err := w.openOutbox(ctx)
	if err != nil {
		return
	}
	w.box.Store(box)
	if w.o.AfterJetStream != nil {
		bg.Go(func() { w.o.AfterJetStream(ctx) })
	}
	bg.Go(func() { box.Watch(ctx, 10*time.Second, w.metrics, w.log) })
	// 2. The incident key bucket: how the bridge knows its incidents; given to the
	// manager before it starts.
	store, err := w.openKeyStore(ctx)
	if err != nil {
		return
	}
	w.o.Manager.SetKeyStore(store)
	// 3. The catalogue and the open incidents. Nothing here stops the process: an
	// unreachable or refusing server is retried, a missing name is reported.
	var unknown map[string]error
	err = retry.Until(ctx, retry.Backoff{Min: time.Second, Max: time.Minute}, func(ctx context.Context) (err error) {
		unknown, err = w.o.Manager.StartKnown(ctx)
		return err
	}, nil, func(err error, wait time.Duration) {
		w.log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Msg("status page not reachable; its work waits, everything else runs")
	})
	if err != nil {
		return
	}
	w.reload.mu.Lock() // a reload meanwhile installed sinks Start did not see: say so
	for name, s := range w.sinks() {
		if _, known := unknown[name]; !known && !s.Resolved() {
			if unknown == nil {
				unknown = map[string]error{}
			}
			unknown[name] = errors.New("names not resolved yet (the rules were reloaded during start); the catalogue refresh resolves them")
		}
	}
	w.names.set(w.sinks(), unknown)
	w.started.Store(true)
	w.reload.mu.Unlock()
	w.log.Info().Int("routes", len(w.sinks())).Int("unknown_names", len(unknown)).Msg("status page catalogue read")
	bg.Go(func() { _ = w.o.Manager.Run(ctx) })
	bg.Go(func() { w.names.watch(ctx, w.sinks) })
	// 4. The worker, started again with the new routes after every reload that changed
	// them (reload.go).
	w.runWorkers(ctx, box, outbox.WorkerOptions{
		// Apply, Ready and Key look the route up at the call: a route changed by a reload
		// takes its new sink for the next item. Run is given the routes of w.sinks, and
		// stopped before a reload removes one.
		Apply: func(ctx context.Context, route string, ev *zuul.Event) (bool, error) {
			s := w.sinks()[route]
			if s == nil {
				return true, fmt.Errorf("status page route %s: not in the rules any more", route)
			}
			return s.Send(ctx, ev)
		},
		Ready: func(route string) error {
			if s := w.sinks()[route]; s == nil || !s.Resolved() {
				return errors.New(w.names.reason(route))
			}
			return nil
		},
		// A job whose derived component the page lacks waits; other jobs go on.
		ReadyItem: func(route string, ev *zuul.Event) error {
			if s := w.sinks()[route]; s != nil {
				return s.Ready(ev)
			}
			return nil
		},
		// The items of one incident key are applied in order; other keys do not wait.
		Key: func(route string, ev *zuul.Event) string {
			if s := w.sinks()[route]; s != nil {
				return s.KeyOf(ev)
			}
			return ""
		},
		// Another replica opening or resolving the same key: try again soon.
		ShortRetry:  func(err error) bool { return errors.Is(err, incident.ErrKeyBusy) },
		DeadLetter:  w.o.DeadLetter,
		RetryWindow: w.o.RetryWindow,
		// Capped at 30 s: the work resumes within that of the status page's return (one
		// request per waiting key and 30 s while it is down is little for it).
		Backoff:        retry.Backoff{Min: time.Second, Max: 30 * time.Second},
		AttemptTimeout: w.o.AttemptTimeout,
		DeferDelay:     time.Minute,
		Log:            w.log,
		Metrics:        w.metrics,
	})
}

// openOutbox opens (or creates) the outbox stream, waiting for NATS as long as it takes;
// a server that lacks JetStream stops the status page side, said through the features set.
func (w *Work) openOutbox(ctx context.Context) (*outbox.Outbox, error) {
	var box *outbox.Outbox
	err := retry.Until(ctx, w.o.StartupBackoff, func(ctx context.Context) (err error) {
		if !w.o.NATS.IsConnected() {
			return errors.New("NATS not connected")
		}
		box, err = outbox.Open(ctx, w.o.NATS, w.o.Outbox)
		return err
	}, func(err error) bool { return errors.Is(err, outbox.ErrNoJetStream) }, func(err error, wait time.Duration) {
		w.log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Msg("outbox stream not available yet; status page work waits, everything else runs")
	})
	if errors.Is(err, outbox.ErrNoJetStream) {
		w.noJetStream(err)
	}
	if err != nil {
		return nil, err
	}
	c := box.Config()
	w.log.Info().Str("stream", c.Stream).Str("subjects", c.Subject+".>").Msg("status page work goes through the outbox")
	return box, nil
}

// openKeyStore opens the incident key bucket, waiting for NATS as long as it takes: the
// store is how the bridge knows its incidents, and keeps replicas from opening two
// incidents for one key.
func (w *Work) openKeyStore(ctx context.Context) (*kvstore.CAS, error) {
	var store *kvstore.CAS
	err := retry.Until(ctx, w.o.StartupBackoff, func(ctx context.Context) (err error) {
		store, err = kvstore.NewCAS(ctx, w.o.NATS, kvstore.CASOptions{Bucket: w.o.KVBucket,
			Replicas: w.o.Replicas, ReplicaCheck: w.o.ReplicaCheck})
		return err
	}, func(err error) bool { return errors.Is(err, kvstore.ErrNoJetStream) }, func(err error, wait time.Duration) {
		w.log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Str("bucket", w.o.KVBucket).
			Msg("incident key bucket not available yet; status page work waits, everything else runs")
	})
	if errors.Is(err, kvstore.ErrNoJetStream) {
		w.noJetStream(err)
	}
	return store, err
}

func (w *Work) noJetStream(err error) {
	w.box.Store(nil)
	w.noJS.Store(&err)
	w.o.Features.NoJetStream(Feature, err)
}

// Started reports whether the status page side runs: the outbox is open and the catalogue
// read (or it will never run: no JetStream, nothing to wait for).
func (w *Work) Started() bool {
	return w.noJS.Load() != nil || len(w.sinks()) == 0 || (w.box.Load() != nil && w.started.Load())
}

// Notes are the lines /readyz adds about the status page side; they do not change its
// status, which is about MQTT and NATS only. A missing JetStream is noted by the features
// set.
func (w *Work) Notes() []string {
	if len(w.sinks()) == 0 {
		return nil
	}
	var out []string
	if w.box.Load() == nil && w.noJS.Load() == nil {
		out = append(out, "status page: waiting for NATS to open the outbox")
	}
	if !w.started.Load() {
		out = append(out, "status page: catalogue not read yet (its work waits)")
	}
	if w.started.Load() {
		w.names.syncDerived(w.sinks())
	}
	out = append(out, w.names.notes()...)
	sort.Strings(out)
	return out
}

// unknownNames reports the routes whose names the status page lacks: loudly, once per
// change (log, gauge, /readyz body).
type unknownNames struct {
	log   zerolog.Logger
	gauge *prometheus.GaugeVec

	mu      sync.Mutex
	unknown map[string]string            // route -> what the status page lacks
	derived map[string]map[string]string // route -> component derived from a job -> what is missing
}

func newUnknownNames(log zerolog.Logger, reg prometheus.Registerer) *unknownNames {
	u := &unknownNames{log: log, unknown: map[string]string{}, derived: map[string]map[string]string{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "zuul_bridge_statuspage_unknown_names",
			Help: "1 for a route whose component, impact type, severity or phase the status page lacks; its work waits in the outbox (for a component derived from a job: only that job's work)."},
			[]string{"route"})}
	reg.MustRegister(u.gauge)
	return u
}

func (u *unknownNames) reason(route string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if r, ok := u.unknown[route]; ok {
		return r
	}
	return "names not resolved"
}

func (u *unknownNames) set(sinks map[string]*incident.Sink, unknown map[string]error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for route := range u.unknown { // a route a reload removed
		if _, ok := sinks[route]; !ok {
			delete(u.unknown, route)
			u.gauge.DeleteLabelValues(route)
		}
	}
	for route := range sinks {
		err, bad := unknown[route]
		if bad {
			reason := strings.ReplaceAll(err.Error(), "\n", "; ")
			if u.unknown[route] != reason {
				u.log.Error().Str("route", route).Str("missing", reason).
					Msg("the status page lacks names this route uses: its work waits in the outbox until they exist or the rules are fixed")
			}
			u.unknown[route] = reason
			u.gauge.WithLabelValues(route).Set(1)
			continue
		}
		if _, was := u.unknown[route]; was {
			u.log.Info().Str("route", route).Msg("the status page now has every name this route uses")
			delete(u.unknown, route)
		}
		u.gauge.WithLabelValues(route).Set(u.gaugeValue(route))
	}
}

// gaugeValue is 1 while the route lacks names, its own or a component derived from a
// job. Under u.mu.
func (u *unknownNames) gaugeValue(route string) float64 {
	if _, bad := u.unknown[route]; bad || len(u.derived[route]) > 0 {
		return 1
	}
	return 0
}

// syncDerived takes the components derived from jobs that the page lacks from each
// route's sink (the incident manager notes them per report and forgets them when a
// catalogue refresh finds them; it logs them too). Only those jobs wait.
func (u *unknownNames) syncDerived(sinks map[string]*incident.Sink) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for route, s := range sinks {
		d := s.UnknownComponents()
		if len(d) == 0 && len(u.derived[route]) == 0 {
			continue
		}
		if len(d) == 0 {
			delete(u.derived, route)
		} else {
			u.derived[route] = d
		}
		u.gauge.WithLabelValues(route).Set(u.gaugeValue(route))
	}
}

// watch notices when the manager's catalogue refresh resolved a route.
func (u *unknownNames) watch(ctx context.Context, current func() map[string]*incident.Sink) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sinks := current()
		u.mu.Lock()
		still := map[string]error{}
		for route, reason := range u.unknown {
			if s := sinks[route]; s != nil && !s.Resolved() {
				still[route] = errors.New(reason)
			}
		}
		u.mu.Unlock()
		u.set(sinks, still)
		u.syncDerived(sinks)
	}
}

func (u *unknownNames) notes() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for route, reason := range u.unknown {
		out = append(out, fmt.Sprintf("status page: route %s: unknown names, its work waits: %s", route, reason))
	}
	for route, comps := range u.derived {
		for name, reason := range comps {
			out = append(out, fmt.Sprintf("status page: route %s: unknown component %s: the incidents of its jobs wait, other jobs go on: %s",
				route, name, strings.ReplaceAll(reason, "\n", "; ")))
		}
	}
	return out
}
