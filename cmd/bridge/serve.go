package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/pipeline"
	"github.com/SovereignCloudStack/zuul-bridge/internal/rules"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func newLogger(cfg *Config, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.Log.Level)
	if cfg.Log.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// hooks let the demo watch the same code path production runs.
type hooks struct {
	ready func() // called once MQTT is subscribed and NATS connected
	// statuspagePlan, when set and no status page is configured, receives the calls the
	// status page routes would make instead of failing start-up.
	statuspagePlan io.Writer
}

// serve runs the bridge until ctx is cancelled, then shuts down in stages: stop intake,
// let deliveries settle within the grace period, flush acks, close NATS and HTTP.
func serve(ctx context.Context, cfg *Config, log zerolog.Logger, h *hooks) error {
	routes, err := rules.LoadFile(cfg.Rules.File)
	if err != nil {
		return configError{err}
	}
	planOnly := cfg.Statuspage.URL == "" && h != nil && h.statuspagePlan != nil
	if cfg.Statuspage.URL == "" && !planOnly {
		for _, r := range routes {
			if r.StatusPage != nil {
				return configError{fmt.Errorf("route %q has a statuspage: block, but BRIDGE_STATUSPAGE_URL is not set", r.Name)}
			}
		}
	}
	mcfg := mqtt.Config{
		URL: cfg.MQTT.URL, ClientID: cfg.MQTT.ClientID, Topic: cfg.MQTT.Topic,
		Username: cfg.MQTT.Username, Password: []byte(cfg.MQTT.Password), PasswordFile: cfg.MQTT.PasswordFile,
		CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile,
		SessionExpiry: cfg.MQTT.SessionExpiry.v, ReceiveMaximum: uint16(cfg.MQTT.ReceiveMaximum.v),
	}
	if err := mcfg.Validate(); err != nil {
		return configError{err}
	}
	// Bind the HTTP port first: a bad address fails before anything connects.
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return configError{fmt.Errorf("BRIDGE_HTTP_ADDR: %w", err)}
	}
	defer ln.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	health := newHealth(reg)
	mcfg.OnConnectionChange = health.mqttUp

	nc, err := connectNATS(cfg, log, health)
	if err != nil {
		return err
	}
	defer nc.Close()
	pub, err := natspub.NewPublisher(nc, log.With().Str("component", "nats").Logger())
	if err != nil {
		return err
	}

	var sp *statuspage.Manager
	if planOnly {
		sp = statuspage.NewManager(statuspage.ManagerOptions{Log: log})
	} else if cfg.Statuspage.URL != "" {
		var keys statuspage.KeyStore
		if cfg.Statuspage.KVBucket != "" {
			if keys, err = openKeyStore(ctx, cfg, nc, log); err != nil {
				return err
			}
		}
		sp, err = newStatuspage(cfg, log, reg, keys)
		if err != nil {
			return configError{err}
		}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zuul_bridge_incidents_open",
			Help: "Incidents the bridge holds open on the status page."}, func() float64 { return float64(sp.OpenIncidents()) }))
	}
	var prs []pipeline.Route
	for _, r := range routes {
		pr := pipeline.Route{Name: r.Name, Match: r.Match.Match}
		if r.NATS != nil {
			s, err := pub.Sink(r.Name, *r.NATS)
			if err != nil {
				return configError{fmt.Errorf("route %q: %w", r.Name, err)}
			}
			pr.Targets = append(pr.Targets, pipeline.Target{Kind: "nats", Sink: s})
		}
		if r.StatusPage != nil {
			s, err := sp.AddRoute(r.Name, *r.StatusPage)
			if err != nil {
				return configError{fmt.Errorf("route %q: %w", r.Name, err)}
			}
			var sink pipeline.Sink = s
			if planOnly {
				sink = planSink{s, h.statuspagePlan}
			}
			pr.Targets = append(pr.Targets, pipeline.Target{Kind: "statuspage", Sink: sink})
		}
		prs = append(prs, pr)
	}
	if sp != nil && !planOnly {
		// Names to IDs, and the open incidents found again, before the first report.
		if err := startStatuspage(ctx, sp, log); err != nil {
			return err
		}
	}

	var rec *reconciler
	if cfg.Zuul.URL != "" {
		if rec, err = newReconciler(cfg, log, routes, nc, reg); err != nil {
			return configError{err}
		}
	}
	var pl *pipeline.Pipeline
	sub, err := mqtt.New(mcfg, func(m *mqtt.Message) {
		pl.Handle(pipeline.Message{Topic: m.Topic, Payload: m.Payload, Ack: m.Ack})
	}, log)
	if err != nil {
		return configError{err}
	}
	pl = pipeline.New(pipeline.Options{
		Routes:     prs,
		MaxPayload: cfg.MaxPayload.Bytes.v,
		Deadline:   cfg.Delivery.Deadline.v,
		Workers:    cfg.Delivery.Workers.v,
		DeadLetter: deadLetter(pub, cfg.NATS.DeadletterSubject),
		Log:        log.With().Str("component", "pipeline").Logger(),
		Metrics:    pipeline.NewMetrics(reg),
		Settled: func(ev *zuul.Event) {
			if rec != nil {
				rec.settled(ev)
			}
		},
	})

	health.mqttReady = sub.Ready
	health.natsReady = nc.IsConnected

	srv := &http.Server{Handler: health.mux(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()

	if err := sub.Start(ctx); err != nil {
		return err
	}
	recDone := make(chan struct{})
	if rec != nil {
		go func() { defer close(recDone); rec.run(ctx, pl) }()
	} else {
		close(recDone)
	}
	spDone := make(chan struct{})
	if sp != nil && !planOnly {
		go func() { defer close(spDone); sp.Run(ctx) }()
	} else {
		close(spDone)
	}
	log.Info().Str("version", version).Str("mqtt", cfg.MQTT.URL).Str("topic", cfg.MQTT.Topic).
		Str("client_id", cfg.MQTT.ClientID).Int("routes", len(routes)).Str("http", ln.Addr().String()).Msg("zuul-bridge started")
	if h != nil && h.ready != nil {
		go func() {
			for ctx.Err() == nil && !(sub.Ready() && nc.IsConnected()) {
				if err := sub.AwaitReady(ctx); err != nil {
					return
				}
				if !nc.IsConnected() { // NATS has no await; look again shortly
					sleepCtx(ctx, 50*time.Millisecond)
				}
			}
			if ctx.Err() == nil {
				h.ready()
			}
		}()
	}

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		return fmt.Errorf("HTTP server: %w", err)
	}
	log.Info().Dur("grace", cfg.Shutdown.Grace.v).Msg("shutting down: intake stopped, settling deliveries in flight")
	sub.StopIntake()
	grace, closeCtx, cancel := shutdownContexts(cfg.Shutdown.Grace.v)
	defer cancel()
	if err := pl.Drain(grace); err != nil {
		log.Warn().Err(err).Msg("shutdown")
	}
	if err := sub.Close(closeCtx); err != nil {
		log.Warn().Err(err).Msg("MQTT disconnect")
	}
	if !awaitDone(closeCtx, spDone) || !awaitDone(closeCtx, recDone) {
		log.Warn().Msg("shutdown: status page or reconcile loop still running at the end of the grace period")
	}
	if err := nc.FlushWithContext(closeCtx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Debug().Err(err).Msg("NATS flush")
	}
	_ = srv.Shutdown(closeCtx)
	log.Info().Msg("stopped")
	return nil
}

// planSink prints the status page calls a report would cause, for the demo without a
// status page. Nothing is applied, so every failure plans an opening.
type planSink struct {
	s   *statuspage.Sink
	out io.Writer
}

func (p planSink) Send(_ context.Context, ev *zuul.Event) (bool, error) {
	for _, call := range p.s.Plan(ev) {
		fmt.Fprintf(p.out, "STATUS PAGE (%s, not called) %s\n", p.s.Name(), call)
	}
	return false, nil
}

// deadLetter publishes a failed report to the dead-letter subject: the payload exactly as
// received (it may not even be UTF-8), the reason and origin in headers.
func deadLetter(pub *natspub.Publisher, subject string) func(ctx context.Context, dl pipeline.DeadLetter) error {
	return func(ctx context.Context, dl pipeline.DeadLetter) error {
		msg := nats.NewMsg(subject)
		msg.Data = dl.Payload
		msg.Header.Set("Bridge-Reason", oneLine(dl.Reason))
		msg.Header.Set("Bridge-Topic", oneLine(dl.Topic))
		if dl.ID != "" {
			msg.Header.Set("Bridge-Id", dl.ID)
			msg.Header.Set("Nats-Msg-Id", "deadletter/"+dl.ID+"/"+dl.Route+"/"+dl.Sink)
		} else {
			// Not a report, so no report id: the payload itself identifies a redelivery.
			sum := sha256.Sum256(append([]byte(dl.Topic+"\x00"), dl.Payload...))
			msg.Header.Set("Nats-Msg-Id", "deadletter/payload-"+hex.EncodeToString(sum[:16]))
		}
		if dl.Route != "" {
			msg.Header.Set("Bridge-Route", dl.Route)
			msg.Header.Set("Bridge-Sink", dl.Sink)
		}
		_, err := pub.Publish(ctx, msg)
		return err
	}
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	if len(b) > 1000 {
		b = append(b[:1000], "..."...)
	}
	return string(b)
}
