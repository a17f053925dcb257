package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/kvlock"
)

// connectNATS connects without giving up: an unreachable NATS at start is an outage to
// ride out (readiness says so), not a reason to exit. Publishing while disconnected
// fails instead of buffering (ReconnectBufSize -1): a buffer a crash would lose is not
// delivery, and the MQTT message stays unacknowledged until NATS has it.
func connectNATS(cfg *Config, log zerolog.Logger, h *health) (*nats.Conn, error) {
	log = log.With().Str("component", "nats").Logger()
	opts := []nats.Option{
		nats.Name("zuul-bridge " + cfg.MQTT.ClientID),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(nc *nats.Conn) {
			h.natsUp(true)
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			h.natsUp(false)
			log.Warn().Err(err).Msg("NATS disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			h.natsUp(true)
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn().Err(err).Msg("NATS error")
		}),
		// Without it a refused first connect (e.g. a wrong token) is retried silently.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("NATS connect failed, retrying")
		}),
	}
	c := cfg.NATS
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NkeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeyFile)
		if err != nil {
			return nil, configError{fmt.Errorf("BRIDGE_NATS_NKEY_FILE: %w", err)}
		}
		opts = append(opts, o)
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfoHandler(func() (string, string) {
			pw, _ := secret(c.Password, c.PasswordFile)
			return c.User, pw
		}))
	}
	if c.Token != "" || c.TokenFile != "" {
		opts = append(opts, nats.TokenHandler(func() string {
			t, _ := secret(c.Token, c.TokenFile)
			return t
		}))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("NATS: %w", err)
	}
	if nc.IsConnected() {
		h.natsUp(true)
	} else {
		log.Warn().Msg("NATS not reachable yet; retrying in the background, not ready until connected")
	}
	return nc, nil
}

// secret returns a value or, when a file is named, the file's content read now: a
// rotated mounted secret is used at the next connect or request without a restart.
func secret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	return readSecretFile(file)
}

func newStatuspage(cfg *Config, log zerolog.Logger, reg prometheus.Registerer, keys statuspage.KeyStore) (*statuspage.Manager, error) {
	var token statuspage.Token
	if c := cfg.Statuspage; c.Token != "" || c.TokenFile != "" {
		token = func() (string, error) { return secret(c.Token, c.TokenFile) }
	}
	httpClient := &http.Client{Timeout: cfg.Statuspage.Timeout.v}
	if c := cfg.Statuspage; c.CAFile != "" || c.CertFile != "" {
		tc, err := tlsConfig(c.CAFile, c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("BRIDGE_STATUSPAGE_CA_FILE/CERT_FILE: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		httpClient.Transport = tr
	}
	client, err := statuspage.NewClient(statuspage.ClientOptions{
		BaseURL:    cfg.Statuspage.URL,
		Token:      token,
		HTTPClient: httpClient,
		UserAgent:  "zuul-bridge/" + version,
	})
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_STATUSPAGE_URL: %w", err)
	}
	return statuspage.NewManager(statuspage.ManagerOptions{
		Client:    client,
		Log:       log,
		Observer:  newIncidentMetrics(reg),
		BridgeID:  cfg.Statuspage.Instance,
		KeyStore:  keys,
		ReplicaID: cfg.MQTT.ClientID,
	}), nil
}

// openKeyStore opens the shared incident-key bucket, waiting for NATS as long as it takes:
// with several replicas, handling reports without it could open duplicate incidents.
func openKeyStore(ctx context.Context, cfg *Config, nc *nats.Conn, log zerolog.Logger) (statuspage.KeyStore, error) {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		store, err := kvlock.New(ctx, nc, kvlock.Options{Bucket: cfg.Statuspage.KVBucket})
		if err == nil {
			return store, nil
		}
		log.Warn().Err(err).Dur("retry_in", wait).Str("bucket", cfg.Statuspage.KVBucket).
			Msg("incident key bucket not available yet; retrying before taking reports")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// startStatuspage resolves names and finds open incidents again before any report is
// handled. An unreachable API is retried (the bridge must not die with it); a name the
// server does not have is a configuration error.
func startStatuspage(ctx context.Context, sp *statuspage.Manager, log zerolog.Logger) error {
	wait := time.Second
	for {
		err := sp.Start(ctx)
		if err == nil {
			return nil
		}
		var apiErr *statuspage.APIError
		if errors.Is(err, statuspage.ErrUnknownNames) {
			return configError{err}
		}
		if errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500 && apiErr.Status != 429 {
			return fmt.Errorf("status page: %w", err)
		}
		log.Warn().Err(err).Dur("retry_in", wait).Msg("status page not reachable at start; retrying before taking reports")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}

// tlsConfig trusts a custom CA (in addition to nothing else: a private CA is the point)
// and presents a client certificate when one is given.
func tlsConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// incidentMetrics counts the incident lifecycle per route.
type incidentMetrics struct {
	steps      *prometheus.CounterVec
	suppressed *prometheus.CounterVec
}

func newIncidentMetrics(reg prometheus.Registerer) *incidentMetrics {
	m := &incidentMetrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_incidents_total",
			Help: "Incident lifecycle steps per route (opened, updated, resolved)."}, []string{"route", "step"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_incidents_suppressed_total",
			Help: "Failing reports that opened no incident, by reason (maintenance, hand-ended)."}, []string{"route", "reason"}),
	}
	reg.MustRegister(m.steps, m.suppressed)
	return m
}

func (m *incidentMetrics) IncidentOpened(route string) {
	m.steps.WithLabelValues(route, "opened").Inc()
}
func (m *incidentMetrics) IncidentUpdated(route string) {
	m.steps.WithLabelValues(route, "updated").Inc()
}
func (m *incidentMetrics) IncidentResolved(route string) {
	m.steps.WithLabelValues(route, "resolved").Inc()
}
func (m *incidentMetrics) Suppressed(route, reason string) {
	m.suppressed.WithLabelValues(route, reason).Inc()
}
