package login_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/login"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
)

// logBuf is a log sink the code under test and the test share.
type logBuf = testenv.Buffer

// Without credentials writes go out anonymously, and the log says so.
func TestNone(t *testing.T) {
	var log logBuf
	l, err := login.New(login.Options{Registerer: prometheus.NewRegistry(), Log: zerolog.New(&log)})
	if err != nil {
		t.Fatal(err)
	}
	if l.Source() != nil {
		t.Error("a token source without credentials")
	}
	if !strings.Contains(log.String(), "no status page token configured") {
		t.Errorf("log: %s", log.String())
	}
}

// A static token is read from its file at every use: a rotated Secret takes effect at once.
func TestStaticTokenFileReadAtEveryUse(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := login.New(login.Options{TokenFile: file, Registerer: prometheus.NewRegistry(), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"token-1", "token-2"} {
		if err := os.WriteFile(file, []byte(want+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := l.Source().BearerToken(t.Context()); err != nil || got != want {
			t.Errorf("BearerToken = %q, %v; want %q", got, err, want)
		}
	}
}

// With an issuer the id_tokens come from the refresh-token chain, kept in a JetStream
// bucket; the seed never reaches the log.
func TestOIDC(t *testing.T) {
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: time.Hour})
	seed := is.Seed()
	var log logBuf
	l, err := login.New(login.Options{Issuer: is.URL(), ClientID: is.ClientID(), RefreshToken: seed, KVBucket: "auth",
		Owner: "pod-0", Timeout: 5 * time.Second, NATS: natstest.Connect(t, natstest.Start(t, true).ClientURL()),
		Registerer: prometheus.NewRegistry(), Log: zerolog.New(&log)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := l.Source().BearerToken(t.Context())
	if err != nil || tok == "" {
		t.Fatalf("BearerToken = %q, %v", tok, err)
	}
	if strings.Contains(log.String(), seed) || strings.Contains(log.String(), tok) {
		t.Error("a token in the log")
	}
	if _, err := login.New(login.Options{Issuer: "not a url", Registerer: prometheus.NewRegistry()}); err == nil ||
		!strings.Contains(err.Error(), "BRIDGE_STATUSPAGE_OIDC_ISSUER") {
		t.Errorf("bad issuer: %v, want an error naming the variable", err)
	}
}

// The state logs one line per change, not per write, and keeps the gauge and counters.
func TestStateOneLinePerChange(t *testing.T) {
	var log logBuf
	reg := prometheus.NewRegistry()
	s := login.NewState(zerolog.New(&log), reg)
	s.AuthRefused(false, "401")
	s.AuthRefused(true, "no token")
	s.AuthRefused(false, "401")
	if n := strings.Count(log.String(), `"level":"error"`); n != 1 {
		t.Errorf("%d error lines for one refused state, want 1:\n%s", n, log.String())
	}
	if v := testutil.ToFloat64(gauge(t, reg)); v != 0 {
		t.Errorf("writes_accepted %v while refused", v)
	}
	s.AuthAccepted()
	s.AuthAccepted()
	if n := strings.Count(log.String(), "accepts the bridge's writes"); n != 1 {
		t.Errorf("%d lines for one accepted state, want 1", n)
	}
	if v := testutil.ToFloat64(gauge(t, reg)); v != 1 {
		t.Errorf("writes_accepted %v once accepted", v)
	}
	if n, err := testutil.GatherAndCount(reg, "zuul_bridge_statuspage_auth_failures_total"); err != nil || n != 2 {
		t.Errorf("failure series %d, %v", n, err)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "zuul_bridge_statuspage_writes_accepted" {
			v := mf.GetMetric()[0].GetGauge().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
		}
	}
	t.Fatal("no zuul_bridge_statuspage_writes_accepted")
	return nil
}
