package main

import (
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/login"
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

// newLogin builds the status page login of the configuration (package login).
func newLogin(cfg *Config, log zerolog.Logger, reg prometheus.Registerer, nc *nats.Conn, replicas *kvstore.ReplicaCheck) (*login.Login, error) {
	sp, o := cfg.Statuspage, cfg.Statuspage.OIDC
	return login.New(login.Options{
		Token: sp.Token, TokenFile: sp.TokenFile,
		Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, ClientSecretFile: o.ClientSecretFile,
		RefreshToken: o.RefreshToken, RefreshTokenFile: o.RefreshTokenFile, KVBucket: o.KVBucket,
		Owner: cfg.MQTT.ClientID, Timeout: sp.Timeout.v, NATS: nc, Registerer: reg, Log: log,
		Replicas: cfg.NATS.JetstreamReplicas.v, ReplicaCheck: replicas,
	})
}
