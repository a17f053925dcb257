// Package login is how the status page client authenticates its writes, as configured:
// a static token (read again from its file for every write), id_tokens from an OIDC
// refresh-token chain kept in a JetStream bucket (package oidc), or none; and what it says
// about it: one log line per change of state, a failure counter, a gauge of whether
// writes are accepted, and the refreshes by result.
package login

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc"
	"github.com/SovereignCloudStack/zuul-bridge/internal/secret"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// Options configure New. Secrets are given as a value or a file (read at every use).
type Options struct {
	// Token, TokenFile: a static token (set neither with Issuer).
	Token, TokenFile string

	// Issuer turns on the OIDC chain; ClientID and, for a confidential client, the secret.
	Issuer                         string
	ClientID                       string
	ClientSecret, ClientSecretFile string
	RefreshToken, RefreshTokenFile string // the seed
	KVBucket                       string // the chain's bucket, shared by replicas
	// Replicas of the chain's bucket (an existing one with fewer is scaled up); <= 0 = 1.
	Replicas     int
	ReplicaCheck *kvstore.ReplicaCheck // reports a bucket NATS refused to scale up
	Owner        string                // this replica, in the chain's lease
	Timeout      time.Duration
	NATS         *nats.Conn
	Registerer   prometheus.Registerer
	Log          zerolog.Logger
}

// Login is the configured authentication.
type Login struct {
	source statuspage.TokenSource // nil = anonymous writes
	state  *State
	run    func(context.Context) // the OIDC refresh loop; nil without one
}

// New builds the token source of the options. Nothing here waits for the issuer, NATS or
// the status page: without a token the bridge runs and its status page writes wait.
func New(o Options) (*Login, error) {
	log := o.Log.With().Str("component", "statuspage-auth").Logger()
	l := &Login{state: NewState(log, o.Registerer)}
	switch {
	case o.Issuer != "":
		// The bucket is opened at the first use: building it waits for no server.
		chain := kvstore.NewTokenChain(o.NATS, kvstore.TokenChainOptions{Bucket: o.KVBucket, Issuer: o.Issuer, ClientID: o.ClientID,
			Replicas: o.Replicas, ReplicaCheck: o.ReplicaCheck})
		var clientSecret func() (string, error)
		if o.ClientSecret != "" || o.ClientSecretFile != "" {
			clientSecret = func() (string, error) { return secret.Value(o.ClientSecret, o.ClientSecretFile) }
		}
		src, err := oidc.New(oidc.Options{
			Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: clientSecret,
			Seed:  func() (string, error) { return secret.Value(o.RefreshToken, o.RefreshTokenFile) },
			Store: oidc.KVStore(chain), Owner: o.Owner, Observer: l.state, Log: log,
			HTTPClient: &http.Client{Timeout: o.Timeout},
		})
		if err != nil {
			return nil, fmt.Errorf("BRIDGE_STATUSPAGE_OIDC_ISSUER: %w", err)
		}
		if seed, _ := secret.Value(o.RefreshToken, o.RefreshTokenFile); seed == "" {
			log.Warn().Msg("no seed refresh token configured; only a chain stored in the bucket can be used")
		}
		log.Info().Str("issuer", o.Issuer).Str("client_id", o.ClientID).Str("bucket", o.KVBucket).
			Msg("status page writes authenticate with id_tokens refreshed at the issuer")
		l.source, l.run = src, src.Run
	case o.Token != "" || o.TokenFile != "":
		l.source = statuspage.Token(func() (string, error) { return secret.Value(o.Token, o.TokenFile) })
	default:
		log.Info().Msg("no status page token configured: writes are sent without one")
	}
	return l, nil
}

// Source is the client's token source; nil = anonymous writes.
func (l *Login) Source() statuspage.TokenSource { return l.source }

// Observer hears the status page's answers to the client's writes.
func (l *Login) Observer() statuspage.AuthObserver { return l.state }

// Run keeps the id_token fresh ahead of its expiry until ctx is done (nothing to do
// without OIDC). Start it once JetStream is known to be there: the chain lives in a bucket.
func (l *Login) Run(ctx context.Context) {
	if l.run != nil {
		l.run(ctx)
	}
}

// State turns the outcome of every write into one log line per change of state, a
// failure counter and a gauge of whether writes are currently accepted.
type State struct {
	log       zerolog.Logger
	failures  *prometheus.CounterVec
	accepted  prometheus.Gauge
	refreshes *prometheus.CounterVec

	mu    sync.Mutex
	state string // "", "accepted", "refused"
}

// NewState registers the metrics on reg.
func NewState(log zerolog.Logger, reg prometheus.Registerer) *State {
	s := &State{
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

func (s *State) set(state, reason string) {
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
		"they wait in the outbox and are retried for BRIDGE_STATUSPAGE_RETRY_WINDOW; NATS routes are not affected")
}

// AuthAccepted implements statuspage.AuthObserver.
func (s *State) AuthAccepted() { s.set("accepted", "") }

// AuthRefused implements statuspage.AuthObserver.
func (s *State) AuthRefused(noToken bool, reason string) {
	r := "refused"
	if noToken {
		r = "no_token"
	}
	s.failures.WithLabelValues(r).Inc()
	s.set("refused", reason)
}

// Refreshed implements oidc.Observer.
func (s *State) Refreshed() { s.refreshes.WithLabelValues("ok").Inc() }

// RefreshFailed implements oidc.Observer.
func (s *State) RefreshFailed(refused bool, reason string) {
	if refused {
		s.refreshes.WithLabelValues("refused").Inc()
		s.set("refused", reason)
		return
	}
	s.refreshes.WithLabelValues("failed").Inc()
}
