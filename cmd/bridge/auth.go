package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc"
	"github.com/SovereignCloudStack/zuul-bridge/internal/secret"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// StatuspageOIDCConfig: BRIDGE_STATUSPAGE_OIDC_*, the id_tokens for the status page's
// auth proxy from a refresh-token chain at the issuer (the SCS Dex).
type StatuspageOIDCConfig struct {
	// Issuer is the issuer URL; the token endpoint comes from its discovery document.
	Issuer string
	// ClientID defaults to the public client of the SCS Dex.
	ClientID string `split_words:"true" default:"status-page-web"`
	// ClientSecret (or its file) is only for a confidential client.
	ClientSecret     string `split_words:"true" json:"-"`
	ClientSecretFile string `split_words:"true"`
	// RefreshToken (or its file) is the seed: a refresh token obtained once with scope
	// offline_access. It starts the chain; a different seed replaces the stored chain.
	RefreshToken     string `split_words:"true" json:"-"`
	RefreshTokenFile string `split_words:"true"`
	// KVBucket keeps the current refresh token (JetStream key-value), shared by replicas.
	KVBucket string `split_words:"true" default:"zuul-bridge-statuspage-auth"`
}

// checkStatuspageAuth reports the invalid combinations of the status page credentials.
func checkStatuspageAuth(c *Config, bad func(name, format string, a ...any)) {
	o, sp := c.Statuspage.OIDC, c.Statuspage
	if o.Issuer == "" {
		for name, v := range map[string]string{
			"STATUSPAGE_OIDC_CLIENT_SECRET": o.ClientSecret, "STATUSPAGE_OIDC_CLIENT_SECRET_FILE": o.ClientSecretFile,
			"STATUSPAGE_OIDC_REFRESH_TOKEN": o.RefreshToken, "STATUSPAGE_OIDC_REFRESH_TOKEN_FILE": o.RefreshTokenFile,
		} {
			if v != "" {
				bad(name, "set without BRIDGE_STATUSPAGE_OIDC_ISSUER")
			}
		}
		return
	}
	if err := checkURL(o.Issuer, "http", "https"); err != nil {
		bad("STATUSPAGE_OIDC_ISSUER", "%v", err)
	}
	if sp.URL == "" {
		bad("STATUSPAGE_OIDC_ISSUER", "set without BRIDGE_STATUSPAGE_URL")
	}
	if sp.Token != "" || sp.TokenFile != "" {
		bad("STATUSPAGE_OIDC_ISSUER", "set together with a static token (BRIDGE_STATUSPAGE_TOKEN or _FILE): use one of them")
	}
	if strings.TrimSpace(o.ClientID) == "" {
		bad("STATUSPAGE_OIDC_CLIENT_ID", "must not be empty (the SCS Dex's client is status-page-web)")
	}
	if o.KVBucket == "" {
		bad("STATUSPAGE_OIDC_KV_BUCKET", "must not be empty")
	}
	for name, pair := range map[string][2]string{
		"STATUSPAGE_OIDC_CLIENT_SECRET": {o.ClientSecret, o.ClientSecretFile},
		"STATUSPAGE_OIDC_REFRESH_TOKEN": {o.RefreshToken, o.RefreshTokenFile},
	} {
		if pair[0] != "" && pair[1] != "" {
			bad(name, "set either BRIDGE_%s or BRIDGE_%s_FILE, not both", name, name)
		}
		// The file must exist (a wrong path is a mistake); it may be empty: the seed is
		// not needed while the stored chain lives.
		if pair[1] != "" {
			if _, err := os.Stat(pair[1]); err != nil {
				bad(name+"_FILE", "%v", err)
			}
		}
	}
}

// statuspageAuth is how the status page client authenticates its writes, and what it
// says about it.
type statuspageAuth struct {
	source statuspage.TokenSource // nil = anonymous writes
	state  *authState
}

// newStatuspageAuth builds the token source of the configuration: a static token (read
// again from its file for every write), an OIDC refresh chain (kept fresh in the
// background until ctx is done), or none. Nothing here waits for the issuer or the
// status page: without a token the bridge runs and its status page writes wait.
func newStatuspageAuth(ctx context.Context, cfg *Config, log zerolog.Logger, reg prometheus.Registerer, nc *nats.Conn) (*statuspageAuth, error) {
	log = log.With().Str("component", "statuspage-auth").Logger()
	a := &statuspageAuth{state: newAuthState(log, reg)}
	sp, o := cfg.Statuspage, cfg.Statuspage.OIDC
	switch {
	case o.Issuer != "":
		// The bucket is opened at the first use, in the background: start-up does not wait
		// for NATS to say whether it has JetStream.
		chain := kvstore.NewTokenChain(nc, kvstore.TokenChainOptions{Bucket: o.KVBucket, Issuer: o.Issuer, ClientID: o.ClientID})
		store := oidc.KVStoreOrMemory(chain, func() {
			log.Warn().Str("bucket", o.KVBucket).Msg("NATS has no JetStream: the refresh-token chain is kept in memory only; " +
				"after a restart the bridge needs a fresh seed (the issuer refuses the old one after its first refresh)")
		})
		var clientSecret func() (string, error)
		if o.ClientSecret != "" || o.ClientSecretFile != "" {
			clientSecret = func() (string, error) { return secret.Value(o.ClientSecret, o.ClientSecretFile) }
		}
		src, err := oidc.New(oidc.Options{
			Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: clientSecret,
			Seed:  func() (string, error) { return secret.Value(o.RefreshToken, o.RefreshTokenFile) },
			Store: store, Owner: cfg.MQTT.ClientID, Observer: a.state, Log: log,
			HTTPClient: &http.Client{Timeout: sp.Timeout.v},
		})
		if err != nil {
			return nil, fmt.Errorf("BRIDGE_STATUSPAGE_OIDC_ISSUER: %w", err)
		}
		if seed, _ := secret.Value(o.RefreshToken, o.RefreshTokenFile); seed == "" {
			log.Warn().Msg("no seed refresh token configured; only a chain stored in the bucket can be used")
		}
		log.Info().Str("issuer", o.Issuer).Str("client_id", o.ClientID).Str("bucket", o.KVBucket).
			Msg("status page writes authenticate with id_tokens refreshed at the issuer")
		go src.Run(ctx)
		a.source = src
	case sp.Token != "" || sp.TokenFile != "":
		a.source = statuspage.Token(func() (string, error) { return secret.Value(sp.Token, sp.TokenFile) })
	default:
		log.Info().Msg("no status page token configured: writes are sent without one")
	}
	return a, nil
}

// authState turns the outcome of every write into one log line per change of state,
// a failure counter and a gauge of whether writes are currently accepted.
type authState struct {
	log       zerolog.Logger
	failures  *prometheus.CounterVec
	accepted  prometheus.Gauge
	refreshes *prometheus.CounterVec

	mu    sync.Mutex
	state string // "", "accepted", "refused"
}

func newAuthState(log zerolog.Logger, reg prometheus.Registerer) *authState {
	s := &authState{
		log: log,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_statuspage_auth_failures_total",
			Help: "Status page writes refused for their credentials (reason=refused: 401/403) or not sent for want of a token (reason=no_token)."},
			[]string{"reason"}),
		accepted: prometheus.NewGauge(prometheus.GaugeOpts{Name: "zuul_bridge_statuspage_writes_accepted",
			Help: "0 while the status page refuses the bridge's writes (or there is no token for them), 1 otherwise."}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_statuspage_oidc_refreshes_total",
			Help: "id_token refreshes at the OIDC issuer by result (ok; refused: the refresh-token chain is broken, re-seed; failed: issuer or bucket unreachable)."},
			[]string{"result"}),
	}
	s.accepted.Set(1)
	for _, r := range []string{"refused", "no_token"} {
		s.failures.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "refused", "failed"} {
		s.refreshes.WithLabelValues(r)
	}
	reg.MustRegister(s.failures, s.accepted, s.refreshes)
	return s
}

func (s *authState) set(state, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == state {
		return
	}
	s.state = state
	if state == "accepted" {
		s.accepted.Set(1)
		s.log.Info().Msg("the status page accepts the bridge's writes")
		return
	}
	s.accepted.Set(0)
	s.log.Error().Str("reason", reason).Msg("the status page refuses the bridge's writes (or there is no token): " +
		"they wait and are retried (in the outbox for BRIDGE_STATUSPAGE_RETRY_WINDOW; without JetStream within the delivery deadline); NATS routes are not affected")
}

// AuthAccepted implements statuspage.AuthObserver.
func (s *authState) AuthAccepted() { s.set("accepted", "") }

// AuthRefused implements statuspage.AuthObserver.
func (s *authState) AuthRefused(noToken bool, reason string) {
	r := "refused"
	if noToken {
		r = "no_token"
	}
	s.failures.WithLabelValues(r).Inc()
	s.set("refused", reason)
}

// Refreshed implements oidc.Observer.
func (s *authState) Refreshed() { s.refreshes.WithLabelValues("ok").Inc() }

// RefreshFailed implements oidc.Observer.
func (s *authState) RefreshFailed(refused bool, reason string) {
	if refused {
		s.refreshes.WithLabelValues("refused").Inc()
		s.set("refused", reason)
		return
	}
	s.refreshes.WithLabelValues("failed").Inc()
}
