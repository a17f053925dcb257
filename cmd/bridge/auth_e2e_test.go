package main

// The status page as the SCS deployment runs it: behind the Oathkeeper mode of the fake
// (anonymous reads, JWT writes) with tokens from the fake OIDC issuer that expire.

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// behindProxy is withStatusPage with the status page fake behind the Oathkeeper proxy
// that takes the issuer's tokens.
func behindProxy(is *oidcfake.Issuer, clientID string) harnessOptions {
	o := withStatusPage(clientID)
	o.StatusPage = &statuspagefake.Options{Version: statuspagefake.V100,
		Oathkeeper: &statuspagefake.Oathkeeper{Issuer: is.URL(), JWKSURL: is.JWKSURL()}}
	return o
}

// failuresOfWave makes n failing reports with incident keys and ids of their own.
func failuresOfWave(t *testing.T, wave, n int) [][]byte {
	base := sampleBytes(t, "periodic-daily_failure_mixed.json")
	var out [][]byte
	for i := range n {
		b := bytes.ReplaceAll(base, []byte("SovereignCloudStack/k8s-cluster-api-provider"), fmt.Appendf(nil, "o/w%d-%d", wave, i))
		b = bytes.Replace(b, []byte(`"uuid": "22799888a7ae82e51b19a6124a096841"`), fmt.Appendf(nil, `"uuid": "%032x"`, 0xa0000+wave*1000+i), 1)
		out = append(out, b)
	}
	return out
}

// noTokens fails when any token the issuer handed out, or the seed, is in the output.
func noTokens(t *testing.T, is *oidcfake.Issuer, outputs ...string) {
	t.Helper()
	all := strings.Join(outputs, "\n")
	if len(all) < 500 {
		t.Fatalf("too little output to search (%d bytes)", len(all))
	}
	for _, tok := range is.Issued() {
		if i := strings.Index(all, tok); i >= 0 {
			t.Fatalf("a token is in the output: ...%s...", all[max(0, i-200):min(len(all), i+40)])
		}
		// A JWT's signature alone is a secret too.
		if j := strings.LastIndexByte(tok, '.'); j > 0 && strings.Contains(all, tok[j+1:]) {
			t.Fatal("an id_token's signature is in the output")
		}
	}
}

func countLines(out, msg string) int { return strings.Count(out, `"message":"`+msg) }

func (p *bridgeProc) requestsWithBearer(t *testing.T, fake *statuspagefake.Fake) {
	t.Helper()
	for _, r := range fake.Requests() {
		if r.Method == "GET" && r.Bearer {
			t.Errorf("GET %s carried an Authorization header", r.Path)
		}
	}
}

// TestExpiredStaticTokenThenRotated: the bridge starts with an expired token in its file;
// it runs, NATS routes deliver, the status page write waits and goes through as soon as
// the file holds a valid token; one log line per change of state; nothing dead-lettered.
func TestExpiredStaticTokenThenRotated(t *testing.T) {
	t.Parallel()
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: time.Hour})
	h := newHarness(t, behindProxy(is, "auth-static"))
	fake, chat, dead := h.fake, h.chat, h.dead
	tokenFile := h.file("token", is.IDToken(-time.Hour)+"\n")
	h.env["BRIDGE_STATUSPAGE_TOKEN_FILE"] = tokenFile
	h.env["BRIDGE_LOG_LEVEL"] = "debug"
	p := h.start() // ready although the token is expired: reads are anonymous

	h.publish(failuresOfWave(t, 0, 1)...)
	waitFor(t, 30*time.Second, "the report on NATS", func() bool { return chat.unique() == 1 })
	waitFor(t, 30*time.Second, "a refused status page write", func() bool {
		return p.metric(t, `zuul_bridge_statuspage_auth_failures_total{reason="refused"}`) >= 1 &&
			p.metric(t, "zuul_bridge_statuspage_writes_accepted") == 0
	})
	if n := len(fake.Incidents()); n != 0 {
		t.Fatalf("%d incidents with an expired token", n)
	}

	writeFile(t, tokenFile, []byte(is.IDToken(time.Hour)+"\n")) // the operator rotates the Secret
	waitFor(t, 60*time.Second, "the incident written with the rotated token", func() bool { return len(fake.Incidents()) == 1 })
	p.waitAcked(t, 1)
	if v := p.metric(t, "zuul_bridge_statuspage_writes_accepted"); v != 1 {
		t.Errorf("writes_accepted %v after the rotation", v)
	}
	if dead.unique() != 0 {
		t.Errorf("%d dead letters", dead.unique())
	}
	p.requestsWithBearer(t, fake)
	out := p.out.String()
	if r, a := countLines(out, "the status page refuses"), countLines(out, "the status page accepts"); r != 1 || a != 1 {
		t.Errorf("%d 'refuses' and %d 'accepts' lines, want one per change of state", r, a)
	}
	noTokens(t, is, out, scrape(t, p.http))
}

// oidcHarness is the harness of a bridge that logs in to the status page behind the
// proxy with a seed refresh token of is, in the file it returns.
func oidcHarness(t *testing.T, is *oidcfake.Issuer, o harnessOptions) (h *harness, seedFile string) {
	h = newHarness(t, o)
	seedFile = h.file("seed", is.Seed()+"\n")
	h.env["BRIDGE_STATUSPAGE_OIDC_ISSUER"] = is.URL()
	h.env["BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN_FILE"] = seedFile
	h.env["BRIDGE_LOG_LEVEL"] = "debug"
	return h, seedFile
}

// TestOIDCTokensExpireDuringStream: id_tokens live 2 s; reports come in waves while they
// expire and are refreshed; every incident is written, nothing is dead-lettered, the
// issuer never sees a refresh token twice.
func TestOIDCTokensExpireDuringStream(t *testing.T) {
	t.Parallel()
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: 2 * time.Second, ReuseWindow: time.Second})
	h, _ := oidcHarness(t, is, behindProxy(is, "auth-stream"))
	fake, dead := h.fake, h.dead
	p := h.start()

	const waves, perWave = 5, 3
	for w := range waves {
		before := is.Counts().Refreshes
		h.publish(failuresOfWave(t, w, perWave)...)
		waitFor(t, 60*time.Second, fmt.Sprintf("the incidents of wave %d", w), func() bool { return len(fake.Incidents()) == (w+1)*perWave })
		// The next wave after the token in use was replaced.
		waitFor(t, 30*time.Second, "a refresh", func() bool { return is.Counts().Refreshes > before })
	}
	p.waitAcked(t, waves*perWave)
	if c := is.Counts(); c.Refused != 0 || c.Reuses != 0 || c.Refreshes < waves {
		t.Errorf("issuer counts %+v", c)
	}
	if dead.unique() != 0 {
		t.Errorf("%d dead letters", dead.unique())
	}
	p.requestsWithBearer(t, fake)
	noTokens(t, is, p.out.String(), scrape(t, p.http))
}

// TestOIDCKilledRightAfterRefresh: SIGKILL right after a refresh; the restarted process
// continues the chain from the bucket (a stale refresh token would be refused: the reuse
// window is short) and writes.
func TestOIDCKilledRightAfterRefresh(t *testing.T) {
	t.Parallel()
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: 2 * time.Second, ReuseWindow: 200 * time.Millisecond})
	h, _ := oidcHarness(t, is, behindProxy(is, "auth-kill"))
	fake := h.fake
	p := h.start()
	refreshed := func(p *bridgeProc) int { return countLines(p.out.String(), "id_token refreshed") }
	waitFor(t, 30*time.Second, "two refreshes (the seed is spent)", func() bool { return refreshed(p) >= 2 })
	n := refreshed(p)
	waitFor(t, 30*time.Second, "the next refresh", func() bool { return refreshed(p) > n })
	p.kill(t)
	outputs := []string{p.out.String()}
	spent := is.Counts().Refreshes

	p2 := h.start()
	h.publish(failuresOfWave(t, 0, 1)...)
	waitFor(t, 60*time.Second, "the incident written after the restart", func() bool { return len(fake.Incidents()) == 1 })
	waitFor(t, 30*time.Second, "the chain continued by the restarted process", func() bool { return is.Counts().Refreshes >= spent+2 })
	outputs = append(outputs, p2.out.String())
	if c := is.Counts(); c.Refused != 0 || c.Reuses != 0 {
		t.Errorf("issuer counts %+v: the restart presented a spent refresh token", c)
	}
	if strings.Contains(p2.out.String(), "starts from the configured seed") {
		t.Error("the restarted process went back to the seed")
	}
	noTokens(t, is, append(outputs, scrape(t, p2.http))...)
}

// TestOIDCTwoReplicasOneChain: two replicas share the subscription and the chain. One
// replica at a time applies a route's outbox (its pin); once it stops (SIGTERM: it hands
// the route over) the other writes with the same chain, also after the first is back (a
// rolling restart; its MQTT session kept its share of the reports). Both wrote, and no
// refresh token was presented twice (the issuer would refuse it after its short reuse
// window).
func TestOIDCTwoReplicasOneChain(t *testing.T) {
	t.Parallel()
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: 2 * time.Second, ReuseWindow: 200 * time.Millisecond})
	h, _ := oidcHarness(t, is, behindProxy(is, ""))
	fake, dead := h.fake, h.dead
	procs := h.replicas()
	opened := func(p *bridgeProc) float64 {
		return p.metric(t, `zuul_bridge_incidents_total{route="nightly",step="opened"}`)
	}
	total, acked := 0, 0.0
	wave := func(w int) {
		before := is.Counts().Refreshes
		h.publish(failuresOfWave(t, w, 4)...)
		total += 4
		waitFor(t, 60*time.Second, fmt.Sprintf("the incidents of wave %d", w), func() bool { return len(fake.Incidents()) == total })
		waitFor(t, 30*time.Second, "a refresh", func() bool { return is.Counts().Refreshes > before })
	}
	wave(0)
	wave(1)
	writer, other, writerID := procs[0], procs[1], "replica-0"
	if opened(writer) == 0 {
		writer, other, writerID = other, writer, "replica-1"
	}
	if opened(writer) != float64(total) {
		t.Fatalf("opened %v and %v of %d: a route's outbox is applied by one replica at a time", opened(procs[0]), opened(procs[1]), total)
	}
	acked = writer.metric(t, "zuul_bridge_reports_acked_total")
	if err := writer.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitExit(t, writer.exited, "the writing replica after SIGTERM")
	restarted := startBridge(t, h.envWith("BRIDGE_MQTT_CLIENT_ID", writerID, "BRIDGE_MQTT_TOPIC", "$share/bridges/zuul/#"))
	wave(2)
	wave(3)
	if n := opened(other); n != 8 {
		t.Errorf("the other replica opened %v incidents after the hand-over, want 8", n)
	}
	waitFor(t, 30*time.Second, "every report acknowledged", func() bool {
		return acked+other.metric(t, "zuul_bridge_reports_acked_total")+restarted.metric(t, "zuul_bridge_reports_acked_total") == float64(total)
	})
	if c := is.Counts(); c.Refused != 0 || c.Reuses != 0 {
		t.Errorf("issuer counts %+v: a refresh token was presented twice", c)
	}
	if dead.unique() != 0 {
		t.Errorf("%d dead letters", dead.unique())
	}
	noTokens(t, is, procs[0].out.String(), procs[1].out.String(), restarted.out.String())
}

// TestStatuspageAuthConfigErrors: contradictory credentials are configuration errors
// (exit 2) that name the variable.
func TestStatuspageAuthConfigErrors(t *testing.T) {
	t.Parallel()
	seed := filepath.Join(t.TempDir(), "seed")
	writeFile(t, seed, []byte("rt-seed\n"))
	base := []string{"BRIDGE_MQTT_URL=mqtt://127.0.0.1:1", "BRIDGE_NATS_URL=nats://127.0.0.1:1", "BRIDGE_STATUSPAGE_URL=http://127.0.0.1:1"}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"BRIDGE_STATUSPAGE_TOKEN=x", "BRIDGE_STATUSPAGE_OIDC_ISSUER=https://idp.example"}, "BRIDGE_STATUSPAGE_OIDC_ISSUER: set together with a static token"},
		{[]string{"BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN=rt"}, "BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN: set without BRIDGE_STATUSPAGE_OIDC_ISSUER"},
		{[]string{"BRIDGE_STATUSPAGE_OIDC_CLIENT_SECRET_FILE=" + seed}, "BRIDGE_STATUSPAGE_OIDC_CLIENT_SECRET_FILE: set without"},
		{[]string{"BRIDGE_STATUSPAGE_OIDC_ISSUER=https://idp.example", "BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN=rt", "BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN_FILE=" + seed}, "BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN: set either"},
		{[]string{"BRIDGE_STATUSPAGE_OIDC_ISSUER=idp.example"}, "BRIDGE_STATUSPAGE_OIDC_ISSUER: "},
		{[]string{"BRIDGE_STATUSPAGE_OIDC_ISSUER=https://idp.example", "BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN_FILE=/nonexistent/seed"}, "BRIDGE_STATUSPAGE_OIDC_REFRESH_TOKEN_FILE: "},
		{[]string{"BRIDGE_STATUSPAGE_OIDC_ISSUER=https://idp.example", "BRIDGE_STATUSPAGE_OIDC_CLIENT_ID="}, "BRIDGE_STATUSPAGE_OIDC_CLIENT_ID: must not be empty"},
	} {
		out, code := runBridge(t, append(base, tc.env...))
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q:\n%s", tc.env, code, tc.want, out)
		}
		if strings.Contains(out, "rt-seed") {
			t.Errorf("%v: the seed is in the output", tc.env)
		}
	}
}

// TestStatusPageNeedsJetStream: on a NATS server that has no JetStream, the status page
// routes (outbox, incident keys, the OIDC chain) do not start and say why: one log line
// naming the feature and the fix, the gauge, the /readyz body. The NATS route delivers as
// always, and the status page route's report is dead-lettered at once with the reason,
// holding nothing back; the issuer is never asked (no chain can be kept).
func TestStatusPageNeedsJetStream(t *testing.T) {
	t.Parallel()
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: time.Hour})
	o := behindProxy(is, "auth-nojs")
	o.JetStream = false
	h, _ := oidcHarness(t, is, o)
	fake, chat, dead := h.fake, h.chat, h.dead
	p := h.start()
	waitFor(t, 30*time.Second, "the feature reported unavailable", func() bool {
		return p.metric(t, `zuul_bridge_feature_unavailable{feature="status page routes"}`) == 1
	})
	code, body := p.get(t, "/readyz")
	if code != 200 || !strings.Contains(body, "status page routes needs JetStream and did not start") || !strings.Contains(body, "nats-server -js") {
		t.Errorf("/readyz %d:\n%s", code, body)
	}
	h.publish(failuresOfWave(t, 0, 1)...)
	waitFor(t, 30*time.Second, "the report on NATS", func() bool { return chat.unique() == 1 })
	waitFor(t, 30*time.Second, "the status page work dead-lettered", func() bool { return dead.unique() == 1 })
	p.waitAcked(t, 1)
	out := p.out.String()
	if n := countLines(out, "status page routes needs JetStream and did not start; NATS routes are not affected"); n != 1 {
		t.Errorf("%d log lines about the missing JetStream, want 1:\n%s", n, tail(out, 20))
	}
	if c := is.Counts(); c.Refreshes != 0 {
		t.Errorf("the issuer was asked without a place to keep the chain: %+v", c)
	}
	if n := len(fake.Incidents()); n != 0 {
		t.Errorf("%d incidents", n)
	}
	noTokens(t, is, out)
}

// TestOIDCBrokenChainReseeded: the issuer revokes the chain; the metrics and one log line
// say so, NATS routes keep delivering, and a new seed in the file heals it without a
// restart: the waiting report's incident is written, nothing dead-lettered.
func TestOIDCBrokenChainReseeded(t *testing.T) {
	t.Parallel()
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: 2 * time.Second, ReuseWindow: 200 * time.Millisecond})
	h, seedFile := oidcHarness(t, is, behindProxy(is, "auth-reseed"))
	fake, chat, dead := h.fake, h.chat, h.dead
	p := h.start()
	waitFor(t, 30*time.Second, "a refresh", func() bool {
		return p.metric(t, `zuul_bridge_statuspage_oidc_refreshes_total{result="ok"}`) >= 1
	})

	is.Revoke() // the operator's Dex session is gone
	waitFor(t, 30*time.Second, "the broken chain in the metrics", func() bool {
		return p.metric(t, `zuul_bridge_statuspage_oidc_refreshes_total{result="refused"}`) >= 1 &&
			p.metric(t, "zuul_bridge_statuspage_writes_accepted") == 0
	})
	h.publish(failuresOfWave(t, 0, 1)...)
	waitFor(t, 30*time.Second, "the report on NATS", func() bool { return chat.unique() == 1 })
	waitFor(t, 30*time.Second, "the write waiting for a token", func() bool {
		return p.metric(t, `zuul_bridge_statuspage_auth_failures_total{reason="no_token"}`) >= 1
	})
	if n := len(fake.Incidents()); n != 0 {
		t.Fatalf("%d incidents without a valid chain", n)
	}

	writeFile(t, seedFile, []byte(is.Seed()+"\n")) // re-seed: a new refresh token in the Secret
	waitFor(t, 60*time.Second, "the incident after re-seeding", func() bool { return len(fake.Incidents()) == 1 })
	waitFor(t, 30*time.Second, "writes accepted again", func() bool { return p.metric(t, "zuul_bridge_statuspage_writes_accepted") == 1 })
	out := p.out.String()
	if n := countLines(out, "no id_token for the status page; writes wait and are retried; the refresh-token chain is broken"); n != 1 {
		t.Errorf("%d log lines about the broken chain, want 1", n)
	}
	if !strings.Contains(out, `"replaced_chain":true`) {
		t.Error("the new seed did not replace the stored chain")
	}
	if dead.unique() != 0 {
		t.Errorf("%d dead letters", dead.unique())
	}
	noTokens(t, is, out, scrape(t, p.http))
}
