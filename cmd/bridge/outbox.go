package main

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
	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// statuspageWork is the status page side of the bridge. Nothing on the intake path waits
// for it: the delivery target of a `statuspage:` route stores the report in the JetStream
// outbox (or, without JetStream, hands it to the incident sink, which retries in memory),
// and everything that needs a server (the outbox stream, the key bucket, the status page
// catalogue) is set up in the background by run, which then starts the outbox worker.
type statuspageWork struct {
	cfg        *Config
	log        zerolog.Logger
	nc         *nats.Conn
	sp         *incident.Manager
	sinks      map[string]*incident.Sink
	deadLetter func(context.Context, delivery.DeadLetter) error
	metrics    *outbox.Metrics
	unknownG   *prometheus.GaugeVec

	mode    atomic.Int32 // modeUndecided until run knows whether NATS has JetStream
	box     atomic.Pointer[outbox.Outbox]
	started atomic.Bool // the manager knows the catalogue and the open incidents

	mu      sync.Mutex
	unknown map[string]string // route -> what the status page lacks
}

const (
	modeUndecided int32 = iota
	modeOutbox
	modeDirect
)

func newStatuspageWork(cfg *Config, log zerolog.Logger, nc *nats.Conn, reg prometheus.Registerer, sp *incident.Manager,
	deadLetter func(context.Context, delivery.DeadLetter) error) *statuspageWork {
	w := &statuspageWork{cfg: cfg, log: log.With().Str("component", "statuspage").Logger(), nc: nc, sp: sp,
		sinks: map[string]*incident.Sink{}, deadLetter: deadLetter, metrics: outbox.NewMetrics(reg),
		unknownG: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "zuul_bridge_statuspage_unknown_names",
			Help: "1 for a route whose component, impact type, severity or phase the status page lacks; its work waits (in the outbox; without JetStream, unacknowledged up to the delivery deadline)."},
			[]string{"route"}),
		unknown: map[string]string{}}
	reg.MustRegister(w.unknownG)
	return w
}

// target is the delivery sink of a route's status page work.
func (w *statuspageWork) target(route string, s *incident.Sink) delivery.Sink {
	w.sinks[route] = s
	return &statuspageTarget{w: w, route: route, direct: s}
}

type statuspageTarget struct {
	w      *statuspageWork
	route  string
	direct *incident.Sink
}

var errUndecided = errors.New("status page work: waiting for NATS to learn whether it has JetStream (the outbox)")

func (t *statuspageTarget) Send(ctx context.Context, ev *zuul.Event) (bool, error) {
	if ev.Outcome != zuul.OutcomeFailure && ev.Outcome != zuul.OutcomeSuccess {
		return false, nil // neither opens nor resolves anything: nothing to store
	}
	switch t.w.mode.Load() {
	case modeOutbox:
		return t.w.box.Load().Sink(t.route).Send(ctx, ev)
	case modeDirect:
		if t.w.started.Load() && !t.direct.Resolved() {
			return true, fmt.Errorf("status page: route %s: %s", t.route, t.w.unknownReason(t.route))
		}
		return t.direct.Send(ctx, ev)
	}
	return true, errUndecided
}

// Start lets a run of reports be stored in the outbox with one wait (delivery.Starter);
// without the outbox the report takes the full path through Send.
func (t *statuspageTarget) Start(ctx context.Context, ev *zuul.Event) (func(context.Context) (bool, error), bool, error) {
	if ev.Outcome != zuul.OutcomeFailure && ev.Outcome != zuul.OutcomeSuccess {
		return func(context.Context) (bool, error) { return false, nil }, false, nil
	}
	if t.w.mode.Load() == modeOutbox {
		return t.w.box.Load().Sink(t.route).Start(ctx, ev)
	}
	return nil, true, errNotStartable
}

var errNotStartable = errors.New("status page work without the outbox is applied one report at a time")

// CanStart: only the outbox stores reports in batches (delivery.MaybeStarter).
func (t *statuspageTarget) CanStart() bool { return t.w.mode.Load() == modeOutbox }

func (w *statuspageWork) unknownReason(route string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := w.unknown[route]; ok {
		return r
	}
	return "names not resolved"
}

// run sets up the status page side in the background, retrying whatever is not there yet,
// and then runs the manager's loops and the outbox worker until ctx is done.
func (w *statuspageWork) run(ctx context.Context) {
	if len(w.sinks) == 0 {
		return // BRIDGE_STATUSPAGE_URL without a statuspage: route: nothing to set up
	}
	var bg sync.WaitGroup
	defer bg.Wait()
	// 1. The outbox stream, or no JetStream at all.
	ocfg := outbox.Config{Stream: w.cfg.Statuspage.Outbox.Stream, Subject: w.cfg.Statuspage.Outbox.Subject,
		Consumer: w.cfg.Statuspage.Outbox.Consumer, MaxAge: w.cfg.Statuspage.Outbox.MaxAge.v,
		MaxBytes: int64(w.cfg.Statuspage.Outbox.MaxBytes.v), Replicas: w.cfg.Statuspage.Outbox.Replicas.v,
		AckWait: w.cfg.Statuspage.Outbox.AckWait.v}
	err := retry.Until(ctx, startupBackoff, func(ctx context.Context) error {
		if !w.nc.IsConnected() {
			return errors.New("NATS not connected")
		}
		box, err := outbox.Open(ctx, w.nc, ocfg)
		if errors.Is(err, outbox.ErrNoJetStream) {
			w.log.Warn().Msg("the NATS server has no JetStream: no outbox; status page work is retried in memory for " +
				"BRIDGE_DELIVERY_DEADLINE while its MQTT report stays unacknowledged, which holds back the reports behind it " +
				"during a status page outage. Enable JetStream to decouple them.")
			w.mode.Store(modeDirect)
			return nil
		}
		if err != nil {
			return err
		}
		w.box.Store(box)
		w.mode.Store(modeOutbox)
		c := box.Config()
		w.log.Info().Str("stream", c.Stream).Str("subjects", c.Subject+".>").Msg("status page work goes through the outbox")
		return nil
	}, nil, func(err error, wait time.Duration) {
		w.log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Msg("outbox stream not available yet; status page work waits, everything else runs")
	})
	if err != nil {
		return
	}
	if box := w.box.Load(); box != nil {
		bg.Go(func() { box.Watch(ctx, 10*time.Second, w.metrics, w.log) })
	}
	// 2. The incident key bucket: how the bridge knows its incidents (none without
	// JetStream or with BRIDGE_STATUSPAGE_KV_BUCKET=""); given to the manager before it
	// starts.
	if w.cfg.Statuspage.KVBucket != "" {
		store, err := openKeyStore(ctx, w.cfg, w.nc, w.log)
		if err != nil {
			return
		}
		w.sp.SetKeyStore(store)
	}
	// 3. The catalogue and the open incidents. Nothing here stops the process: an
	// unreachable or refusing server is retried, a missing name is reported.
	var unknown map[string]error
	err = retry.Until(ctx, retry.Backoff{Min: time.Second, Max: time.Minute}, func(ctx context.Context) (err error) {
		unknown, err = w.sp.StartKnown(ctx)
		return err
	}, nil, func(err error, wait time.Duration) {
		w.log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Msg("status page not reachable; its work waits, everything else runs")
	})
	if err != nil {
		return
	}
	w.setUnknown(unknown)
	w.started.Store(true)
	w.log.Info().Int("routes", len(w.sinks)).Int("unknown_names", len(unknown)).Msg("status page catalogue read")
	bg.Go(func() { _ = w.sp.Run(ctx) })
	bg.Go(func() { w.watchNames(ctx) })
	// 4. The worker.
	if box := w.box.Load(); box != nil {
		routes := make([]string, 0, len(w.sinks))
		for r := range w.sinks {
			routes = append(routes, r)
		}
		sort.Strings(routes)
		box.Run(ctx, routes, outbox.WorkerOptions{
			Apply: func(ctx context.Context, route string, ev *zuul.Event) (bool, error) {
				return w.sinks[route].Send(ctx, ev)
			},
			Ready: func(route string) error { // Run is given the routes of w.sinks
				if !w.sinks[route].Resolved() {
					return errors.New(w.unknownReason(route))
				}
				return nil
			},
			DeadLetter:  w.deadLetter,
			RetryWindow: w.cfg.Statuspage.RetryWindow.v,
			Backoff:     retry.Backoff{Min: time.Second, Max: 5 * time.Minute},
			// Room for three requests (a resolve is GET, POST and PATCH) and some, so that
			// an attempt ends with the status page's answers or the client's timeout, not
			// this one.
			AttemptTimeout: w.cfg.Statuspage.Timeout.v*3 + 5*time.Second,
			DeferDelay:     time.Minute,
			Log:            w.log,
			Metrics:        w.metrics,
		})
	}
}

// setUnknown reports the routes whose names the status page lacks: loudly, once per
// change (log, gauge, /readyz body).
func (w *statuspageWork) setUnknown(unknown map[string]error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for route := range w.sinks {
		err, bad := unknown[route]
		if bad {
			reason := strings.ReplaceAll(err.Error(), "\n", "; ")
			if w.unknown[route] != reason {
				w.log.Error().Str("route", route).Str("missing", reason).
					Msg("the status page lacks names this route uses: its work waits until they exist or the rules are fixed " +
						"(in the outbox; without JetStream, unacknowledged up to the delivery deadline)")
			}
			w.unknown[route] = reason
			w.unknownG.WithLabelValues(route).Set(1)
			continue
		}
		if _, was := w.unknown[route]; was {
			w.log.Info().Str("route", route).Msg("the status page now has every name this route uses")
			delete(w.unknown, route)
		}
		w.unknownG.WithLabelValues(route).Set(0)
	}
}

// watchNames notices when the manager's catalogue refresh resolved a route.
func (w *statuspageWork) watchNames(ctx context.Context) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		still := map[string]error{}
		for route, reason := range w.unknown {
			if !w.sinks[route].Resolved() {
				still[route] = errors.New(reason)
			}
		}
		w.mu.Unlock()
		w.setUnknown(still)
	}
}

// notes are the lines /readyz adds about the status page side; they do not change its
// status, which is about MQTT and NATS only.
func (w *statuspageWork) notes() []string {
	if len(w.sinks) == 0 {
		return nil
	}
	var out []string
	switch w.mode.Load() {
	case modeUndecided:
		out = append(out, "status page: waiting for NATS to open the outbox")
	case modeDirect:
		out = append(out, "status page: no JetStream, no outbox (work retried in memory)")
	}
	if !w.started.Load() {
		out = append(out, "status page: catalogue not read yet (its work waits)")
	}
	w.mu.Lock()
	for route, reason := range w.unknown {
		out = append(out, fmt.Sprintf("status page: route %s: unknown names, its work waits: %s", route, reason))
	}
	w.mu.Unlock()
	sort.Strings(out)
	return out
}
