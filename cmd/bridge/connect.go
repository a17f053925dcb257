package main

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/features"
	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/login"
	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt"
	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/rules"
	"github.com/SovereignCloudStack/zuul-bridge/internal/secret"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
)

// startupBackoff paces the waits for a server the bridge cannot start without.
var startupBackoff = retry.Backoff{Min: time.Second, Max: 30 * time.Second}

func mqttConfig(cfg *Config) mqtt.Config {
	return mqtt.Config{
		URL: cfg.MQTT.URL, ClientID: cfg.MQTT.ClientID, Topic: cfg.MQTT.Topic,
		Username: cfg.MQTT.Username, Password: []byte(cfg.MQTT.Password), PasswordFile: cfg.MQTT.PasswordFile,
		CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile,
		SessionExpiry: cfg.MQTT.SessionExpiry.v, ReceiveMaximum: uint16(cfg.MQTT.ReceiveMaximum.v),
	}
}

// connectNATS connects without giving up: an unreachable NATS at start is an outage to
// ride out (readiness says so), not a reason to exit. Publishing while disconnected
// fails instead of buffering (ReconnectBufSize -1): a buffer a crash would lose is not
// delivery, and the MQTT message stays unacknowledged until NATS has it.
func connectNATS(cfg *Config, log zerolog.Logger, h *health) (*nats.Conn, error) {
	log = log.With().Str("component", "nats").Logger()
	var nkeyPub string // the nkey the connection was made with
	if cfg.NATS.NkeyFile != "" {
		nkeyPub = nkeyPublic(cfg.NATS.NkeyFile)
	}
	opts := []nats.Option{
		nats.Name("zuul-bridge " + cfg.MQTT.ClientID),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		// Reconnect for ever, also after authorization errors: nats.go gives up after the
		// same one twice in a row, yet a password rotated on the server shortly before the
		// mounted file is right again once the file is updated (the credential callbacks
		// below re-read it on every attempt).
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("NATS reconnect attempt failed; trying again")
		}),
		// Closed is final for a connection: nothing reconnects it any more, so /healthz
		// fails and the orchestrator restarts the process.
		nats.ClosedHandler(func(nc *nats.Conn) {
			h.natsUp(false)
			if h.stopping.Load() { // the bridge's own close at shutdown
				log.Info().Msg("NATS connection closed")
				return
			}
			h.natsClosed(nc.LastError())
			log.Error().Err(nc.LastError()).Msg("NATS connection closed for good; /healthz fails until restarted")
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			h.natsUp(true)
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			h.natsUp(false)
			if h.stopping.Load() { // the bridge's own close at shutdown: the closed line says it
				return
			}
			log.Warn().Err(err).Msg("NATS disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			h.natsUp(true)
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn().Err(err).Msg("NATS error")
			if nkeyPub != "" && errors.Is(err, nats.ErrAuthorization) {
				if now := nkeyPublic(cfg.NATS.NkeyFile); now != "" && now != nkeyPub {
					// Only a restart uses a new nkey: say so through /healthz.
					h.natsClosed(errors.New("the nkey seed file holds a new key; restart to use it"))
				}
			}
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
			pw, _ := secret.Value(c.Password, c.PasswordFile)
			return c.User, pw
		}))
	}
	if c.Token != "" || c.TokenFile != "" {
		opts = append(opts, nats.TokenHandler(func() string {
			t, _ := secret.Value(c.Token, c.TokenFile)
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

func newStatuspage(cfg *Config, log zerolog.Logger, reg prometheus.Registerer, auth *login.Login) (*incident.Manager, error) {
	httpClient := &http.Client{Timeout: cfg.Statuspage.Timeout.v}
	if c := cfg.Statuspage; c.CAFile != "" || c.CertFile != "" {
		tc, err := secret.TLSConfig(c.CAFile, c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("BRIDGE_STATUSPAGE_CA_FILE/CERT_FILE: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		httpClient.Transport = tr
	}
	opts := statuspage.ClientOptions{BaseURL: cfg.Statuspage.URL, HTTPClient: httpClient, UserAgent: "zuul-bridge/" + version}
	if auth != nil { // nil: reads only (bridge check -online), which are anonymous
		opts.Auth, opts.AuthObserver = auth.Source(), auth.Observer()
	}
	client, err := statuspage.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_STATUSPAGE_URL: %w", err)
	}
	return incident.NewManager(incident.ManagerOptions{
		Client:     client,
		Log:        log,
		Registerer: reg,
		BridgeID:   cfg.Statuspage.Instance,
		ReplicaID:  cfg.MQTT.ClientID,
	}), nil
}

// reconcileFeature is reconciliation's name in the features set.
const reconcileFeature = "reconciliation"

func newReconciler(cfg *Config, log zerolog.Logger, routes func() []rules.Route, nc *nats.Conn, reg prometheus.Registerer, submit reconcile.Submit,
	ran func(tenant, pipeline string, end time.Time), feats *features.Set, replicas *kvstore.ReplicaCheck) (*reconcile.Service, error) {
	var token func() (string, error)
	if z := cfg.Zuul; z.Token != "" || z.TokenFile != "" {
		token = func() (string, error) { return secret.Value(z.Token, z.TokenFile) }
	}
	client, err := zuulweb.New(zuulweb.Options{BaseURL: cfg.Zuul.URL, Token: token,
		HTTPClient: &http.Client{Timeout: 60 * time.Second}, UserAgent: "zuul-bridge/" + version})
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_ZUUL_URL: %w", err)
	}
	return reconcile.NewService(reconcile.ServiceOptions{
		Client: client, Tenants: cfg.Zuul.Tenants, Interval: cfg.Zuul.ReconcileInterval.v, Lookback: cfg.Zuul.Lookback.v,
		Settle: cfg.Zuul.Settle.v,
		Wants: func(tenant, pipeline string) bool {
			for _, route := range routes() { // the rules in force (reloaded)
				if route.Reconcile && route.Match.MayMatch(tenant, pipeline) {
					return true
				}
			}
			return false
		},
		NATS: nc, Bucket: cfg.Zuul.KVBucket, Replicas: cfg.NATS.JetstreamReplicas.v, ReplicaCheck: replicas, Submit: submit, Log: log, Metrics: reconcile.NewMetrics(reg),
		Ran: ran, NoJetStream: func(err error) { feats.NoJetStream(reconcileFeature, err) },
	}), nil
}
