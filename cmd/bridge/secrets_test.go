package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

// TestNoSecretAnywhere runs the binary at debug level with known secrets through its
// failure paths (refused MQTT login, refused NATS token, 401 from the status page) and
// searches everything it wrote: logs, dead letters, metrics, and the check output.
func TestNoSecretAnywhere(t *testing.T) {
	const (
		mqttPass  = "mqtt-SECRET-4f1c"
		natsToken = "nats-SECRET-9a2e"
		spToken   = "statuspage-SECRET-77b0"
	)
	t.Parallel()
	secrets := []string{mqttPass, natsToken, spToken}
	var everything strings.Builder
	o := withStatusPage("secrets-2")
	o.Mosquitto = mqtttest.MosquittoOptions{Username: "bridge", Password: "the-right-one"}
	o.StatusPage.Token = "the-right-sp-token"
	h := newHarness(t, o)

	// Run 1: the broker and NATS refuse the credentials.
	nsAuth := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: freePortNumber(t), NoLog: true, NoSigs: true, Authorization: "the-right-token"})
	p := launchBridge(t, map[string]string{"BRIDGE_LOG_LEVEL": "trace", "BRIDGE_MQTT_URL": h.brokerURL,
		"BRIDGE_MQTT_USERNAME": "bridge", "BRIDGE_MQTT_PASSWORD": mqttPass, "BRIDGE_NATS_URL": nsAuth.ClientURL(),
		"BRIDGE_NATS_TOKEN": natsToken, "BRIDGE_MQTT_CLIENT_ID": "secrets-1"})
	// Each failure path must have run before its output is searched: wait for each.
	waitFor(t, 30*time.Second, "the MQTT refusal logged", func() bool {
		return len(logEntries(p.out.String(), "mqtt", "mqtt broker refused the connection, retrying", "")) > 0
	})
	waitFor(t, 30*time.Second, "the NATS authorization failure logged", func() bool {
		return len(logEntries(p.out.String(), "nats", "", "authorization violation")) > 0
	})
	everything.WriteString(scrape(t, p.http))
	p.kill(t)
	everything.WriteString(p.out.String())

	// Run 2: the status page refuses the token: the outbox retries the write (a fresh token
	// may come) until its retry window ends, then dead-letters it with the reason.
	dead := h.dead
	env := h.envWith("BRIDGE_MQTT_USERNAME", "bridge", "BRIDGE_MQTT_PASSWORD_FILE", h.file("mqtt-pass", "the-right-one\n"),
		"BRIDGE_STATUSPAGE_TOKEN", spToken, "BRIDGE_LOG_LEVEL", "trace", "BRIDGE_STATUSPAGE_RETRY_WINDOW", "3s")
	p2 := startBridge(t, env)
	h.publish(uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "dead letter for the 401", func() bool { return dead.unique() == 1 })
	for _, m := range dead.all() {
		for k, v := range m.Header {
			everything.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
	}
	reason := dead.first().Header.Get("Bridge-Reason")
	if !strings.Contains(reason, "401") {
		t.Errorf("dead letter reason %q does not say 401", reason)
	}
	everything.WriteString(scrape(t, p2.http))
	p2.kill(t)
	everything.WriteString(p2.out.String())

	// The check subcommand with the same environment.
	var checkEnv []string
	for k, v := range env {
		checkEnv = append(checkEnv, k+"="+v)
	}
	out, _ := runBridge(t, checkEnv, "check", filepath.Join("..", "..", "internal", "samples", "periodic-daily_failure_mixed.json"))
	everything.WriteString(out)

	all := everything.String()
	if len(all) < 1000 {
		t.Fatalf("too little output to search (%d bytes)", len(all))
	}
	for _, s := range secrets {
		if strings.Contains(all, s) {
			i := strings.Index(all, s)
			t.Errorf("secret %q found: ...%s...", s, all[max(0, i-200):min(len(all), i+50)])
		}
	}
}

// TestNATSNkeyFile: NATS authentication by an nkey seed file; the seed never shows.
func TestNATSNkeyFile(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seedFile := filepath.Join(t.TempDir(), "bridge.nk")
	writeFile(t, seedFile, seed)
	o := natsOptions(t)
	o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{NATS: o, NATSConn: []nats.Option{opt}, ClientID: "secrets-nkey", LogLevel: "trace",
		Env: map[string]string{"BRIDGE_NATS_NKEY_FILE": seedFile}})
	p := h.start()
	h.publish(uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "the report over an nkey-authenticated connection", func() bool { return h.chat.unique() == 1 })
	if strings.Contains(p.out.String(), string(seed)) {
		t.Fatal("the nkey seed appears in the output")
	}
}
