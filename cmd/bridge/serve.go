package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/features"
	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/lastrun"
	"github.com/SovereignCloudStack/zuul-bridge/internal/logging"
	"github.com/SovereignCloudStack/zuul-bridge/internal/login"
	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
	"github.com/SovereignCloudStack/zuul-bridge/internal/pagework"
	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/rules"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// newLogger logs to w as BRIDGE_LOG_FORMAT and BRIDGE_LOG_LEVEL say (the console format
// coloured only on a terminal without NO_COLOR).
func newLogger(cfg *Config, w io.Writer) zerolog.Logger {
	return logging.New(w, cfg.Log.Format, cfg.Log.Level)
}

// hooks let the demo watch the same code path production runs.
type hooks struct {
	ready func() // called once MQTT is subscribed and NATS connected
	// reportLevel is the level of the one line per report (kept by which routes, or
	// dropped and why); without hooks it is debug.
	reportLevel zerolog.Level
}

func (h *hooks) reports() zerolog.Level {
	if h == nil {
		return zerolog.DebugLevel
	}
	return h.reportLevel
}

// serve runs the bridge until ctx is cancelled, then shuts down in stages: stop intake,
// let deliveries settle within the grace period, flush acks, close NATS and HTTP.
func serve(ctx context.Context, cfg *Config, log zerolog.Logger, h *hooks) error {
	routes, rulesHash, err := loadRules(cfg.Rules.File)
	if err != nil {
		return configError{err}
	}
	if err := rulesNeedStatuspage(routes, cfg.Statuspage.URL); err != nil {
		return configError{err}
	}
	// SIGHUP reloads the rules (reload.go); caught from here on, so that it never ends
	// the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for _, w := range cfg.warnings {
		log.Warn().Msg(w)
	}
	mcfg := mqttConfig(cfg)
	// Bind the HTTP port first: a bad address fails before anything connects.
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return configError{fmt.Errorf("BRIDGE_HTTP_ADDR: %w", err)}
	}
	defer ln.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	health := newHealth(reg)
	health.pprof = cfg.HTTP.Pprof
	mcfg.OnConnectionChange = health.mqttUp

	nc, err := connectNATS(cfg, log, health)
	if err != nil {
		return err
	}
	defer func() { health.stopping.Store(true); nc.Close() }()
	pub, err := natspub.NewPublisher(nc, log.With().Str("component", "nats").Logger())
	if err != nil {
		return err
	}
	if err := pub.Register(reg); err != nil {
		return err
	}

	// What needs JetStream and did not get it says so here (log, metric, /readyz).
	feats := features.New(log, reg)
	// Streams and buckets with fewer replicas than BRIDGE_NATS_JETSTREAM_REPLICAS asks,
	// because NATS refused: log, metric, /readyz.
	replicas := kvstore.NewReplicaCheck(log.With().Str("component", "nats").Logger(), reg)
	// Every part's lines in the /readyz body, in this order.
	notes := []func() []string{feats.Notes, replicas.Notes}
	// The status page side needs servers (JetStream, the key bucket, the status page); it
	// is set up in the background (package pagework), so that nothing here waits for them.
	var sp *incident.Manager
	var spw *pagework.Work
	if cfg.Statuspage.URL != "" {
		auth, err := newLogin(cfg, log, reg, nc, replicas)
		if err != nil {
			return configError{err}
		}
		if sp, err = newStatuspage(cfg, log, reg, auth); err != nil {
			return configError{err}
		}
		spw = newPagework(cfg, log, nc, reg, sp, auth, feats, replicas, pub.DeadLetterer(cfg.NATS.DeadletterSubject))
		notes = append(notes, spw.Notes)
	}
	prs, err := deliveryRoutes(routes, pub, sp, spw)
	if err != nil {
		return configError{err}
	}

	// The rules in force, reloaded on SIGHUP, POST /-/reload and a changed file (reload.go).
	rs := newRuleSet(cfg.Rules.File, cfg.Statuspage.URL, routes, rulesHash, log, reg)
	rs.pub, rs.sp, rs.spw = pub, sp, spw
	notes = append(notes, rs.Notes)
	health.notes = func() []string {
		var out []string
		for _, n := range notes {
			out = append(out, n()...)
		}
		return out
	}
	health.reload = rs.reloadHandler(cfg.HTTP.Lifecycle)

	// When each pipeline last ran, from MQTT reports and zuul-web alike.
	ran := lastrun.New(nil)
	reg.MustRegister(ran)
	var rec *reconcile.Service
	var dispatcher *delivery.Dispatcher
	if cfg.Zuul.URL != "" {
		submit := func(ctx context.Context, ev *zuul.Event) error {
			err := dispatcher.Submit(ctx, ev)
			if errors.Is(err, delivery.ErrInFlight) { // the MQTT copy is delivered: not ours
				return fmt.Errorf("%w: %w", reconcile.ErrDeferred, err)
			}
			if errors.Is(err, delivery.ErrDeadLettered) {
				return fmt.Errorf("%w: %w", reconcile.ErrNotApplied, err)
			}
			return err
		}
		feats.Expect(reconcileFeature)
		if rec, err = newReconciler(cfg, log, func() []rules.Route { return rs.Routes() }, nc, reg, submit, ran.Observe, feats, replicas); err != nil {
			return configError{err}
		}
	}
	sub, err := mqtt.New(mcfg, func(m *mqtt.Message) {
		dispatcher.Handle(delivery.Message{Topic: m.Topic, Payload: m.Payload, Ack: m.Ack})
	}, log)
	if err != nil {
		return configError{err}
	}
	dispatcher = delivery.New(delivery.Options{
		Routes:     prs,
		MaxPayload: cfg.MaxPayload.Bytes.v,
		Deadline:   cfg.Delivery.Deadline.v,
		Workers:    cfg.Delivery.Workers.v,
		// Half the MQTT window: reports held for a joint confirmation never fill it.
		MaxUnconfirmed: max(1, cfg.MQTT.ReceiveMaximum.v/2),
		DeadLetter:     pub.DeadLetterer(cfg.NATS.DeadletterSubject),
		Log:            log.With().Str("component", "delivery").Logger(),
		Metrics:        delivery.NewMetrics(reg),
		Observe:        ran.ObserveEvent,
		ReportLevel:    h.reports(),
		Settled: func(ev *zuul.Event, applied bool) {
			if rec != nil && applied { // a dead-lettered report is left to reconciliation
				rec.Settled(ev)
			}
		},
	})
	rs.dispatcher = dispatcher
	health.mqttReady = sub.Ready
	health.natsReady = nc.IsConnected

	// Run: HTTP, the MQTT intake, and the background loops of the sinks.
	srv := &http.Server{Handler: health.mux(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	if err := sub.Start(ctx); err != nil {
		return err
	}
	var background sync.WaitGroup
	if rec != nil {
		background.Go(func() { rec.Run(ctx) })
	}
	if spw != nil {
		background.Go(func() { spw.Run(ctx) })
	}
	background.Go(func() { rs.watch(ctx, hup) })
	log.Info().Str("version", version).Str("mqtt", cfg.MQTT.URL).Str("topic", cfg.MQTT.Topic).
		Str("client_id", cfg.MQTT.ClientID).Int("routes", len(routes)).Str("http", ln.Addr().String()).Msg("zuul-bridge started")
	if h != nil && h.ready != nil {
		sideReady := func() bool { return true }
		if spw != nil {
			sideReady = spw.Started
		}
		go awaitReady(ctx, sub, nc, sideReady, h.ready)
	}
	select {
	case <-ctx.Done():
	case err := <-httpDone:
		return fmt.Errorf("HTTP server: %w", err)
	}

	// Drain in stages: no new reports, settle what is in flight within the grace period
	// (acknowledging only what finished), disconnect MQTT, stop the loops, flush NATS.
	log.Info().Stringer("grace", cfg.Shutdown.Grace.v).Msg("shutting down: intake stopped, settling deliveries in flight")
	sub.StopIntake()
	grace, closeCtx, cancel := shutdownContexts(cfg.Shutdown.Grace.v)
	defer cancel()
	if err := dispatcher.Drain(grace); err != nil {
		log.Warn().Err(err).Msg("shutdown")
	}
	if err := sub.Close(closeCtx); err != nil {
		log.Warn().Err(err).Msg("MQTT disconnect")
	}
	loopsDone := make(chan struct{})
	go func() { background.Wait(); close(loopsDone) }()
	if !awaitDone(closeCtx, loopsDone) {
		log.Warn().Msg("shutdown: status page or reconcile loop still running at the end of the grace period")
	}
	if err := nc.FlushWithContext(closeCtx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Debug().Err(err).Msg("NATS flush")
	}
	_ = srv.Shutdown(closeCtx)
	log.Info().Msg("stopped")
	return nil
}

// deliveryRoutes gives each route of the rules file its sinks.
func deliveryRoutes(routes []rules.Route, pub *natspub.Publisher, sp *incident.Manager, spw *pagework.Work) ([]delivery.Route, error) {
	var out []delivery.Route
	for _, r := range routes {
		dr := delivery.Route{Name: r.Name, Match: r.Match.Match}
		if r.SplitJobs {
			dr.Split = (*zuul.Event).SplitJobs // one event per voting build (issue 25)
		}
		if r.NATS != nil {
			s, err := pub.Sink(r.Name, *r.NATS)
			if err != nil {
				return nil, fmt.Errorf("route %q: %w", r.Name, err)
			}
			dr.Targets = append(dr.Targets, delivery.Target{Kind: "nats", Sink: s})
		}
		if r.StatusPage != nil {
			s, err := sp.AddRoute(r.Name, *r.StatusPage)
			if err != nil {
				return nil, fmt.Errorf("route %q: %w", r.Name, err)
			}
			dr.Targets = append(dr.Targets, delivery.Target{Kind: "statuspage", Sink: spw.Target(r.Name, s)})
		}
		out = append(out, dr)
	}
	return out, nil
}

// awaitReady calls ready once MQTT is subscribed, NATS connected and the status page side
// started (its outbox open and its catalogue read): the demo replays its samples then, so
// that none of them waits for the outbox.
func awaitReady(ctx context.Context, sub *mqtt.Subscriber, nc *nats.Conn, sideReady func() bool, ready func()) {
	for ctx.Err() == nil && !(sub.Ready() && nc.IsConnected() && sideReady()) {
		if err := sub.AwaitReady(ctx); err != nil {
			return
		}
		if !nc.IsConnected() || !sideReady() { // neither has an await; look again shortly
			retry.Sleep(ctx, 50*time.Millisecond)
		}
	}
	if ctx.Err() == nil {
		ready()
	}
}

// newPagework wires the status page side (package pagework) from the configuration.
func newPagework(cfg *Config, log zerolog.Logger, nc *nats.Conn, reg prometheus.Registerer, sp *incident.Manager,
	auth *login.Login, feats *features.Set, replicas *kvstore.ReplicaCheck, deadLetter func(context.Context, delivery.DeadLetter) error) *pagework.Work {
	o := cfg.Statuspage.Outbox
	return pagework.New(pagework.Options{
		Outbox: outbox.Config{Stream: o.Stream, Subject: o.Subject, Consumer: o.Consumer, MaxAge: o.MaxAge.v,
			MaxBytes: int64(o.MaxBytes.v), AckWait: o.AckWait.v},
		Replicas:     cfg.NATS.JetstreamReplicas.v,
		ReplicaCheck: replicas,
		KVBucket:     cfg.Statuspage.KVBucket,
		RetryWindow:  cfg.Statuspage.RetryWindow.v,
		// Room for three requests (a resolve is GET, POST and PATCH) and some, so that an
		// attempt ends with the status page's answers or the client's timeout, not this one.
		AttemptTimeout: cfg.Statuspage.Timeout.v*3 + 5*time.Second,
		StartupBackoff: startupBackoff,
		AfterJetStream: auth.Run,
		NATS:           nc, Manager: sp, DeadLetter: deadLetter, Features: feats, Registerer: reg, Log: log,
	})
}
