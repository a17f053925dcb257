package main

import (
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
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
	secrets := []string{mqttPass, natsToken, spToken}
	var everything strings.Builder

	// Run 1: the broker and NATS refuse the credentials.
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Username: "bridge", Password: "the-right-one"})
	nsAuth := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: freePortNumber(t), NoLog: true, NoSigs: true, Authorization: "the-right-token"})
	p := &bridgeProc{out: &syncBuffer{}, http: freeLocalAddr(t), exited: make(chan struct{})}
	p.cmd = exec.Command(bridgeBin)
	p.cmd.Env = []string{"BRIDGE_HTTP_ADDR=" + p.http, "BRIDGE_LOG_LEVEL=trace", "BRIDGE_MQTT_URL=" + broker.URL(),
		"BRIDGE_MQTT_USERNAME=bridge", "BRIDGE_MQTT_PASSWORD=" + mqttPass, "BRIDGE_NATS_URL=" + nsAuth.ClientURL(),
		"BRIDGE_NATS_TOKEN=" + natsToken, "BRIDGE_MQTT_CLIENT_ID=secrets-1"}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
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
	fake := statuspagefake.New(t, statuspagefake.Options{Token: "the-right-sp-token"})
	ns := natstest.Start(t, true)
	nc := natsConn(t, ns.ClientURL())
	dead := collect(t, nc, "zuul-bridge.deadletter")
	nc.Flush()
	dir := t.TempDir()
	passFile := filepath.Join(dir, "mqtt-pass")
	writeFile(t, passFile, []byte("the-right-one\n"))
	env := statuspageEnv(t, broker, ns.ClientURL(), fake.URL(), "secrets-2")
	env["BRIDGE_MQTT_USERNAME"] = "bridge"
	env["BRIDGE_MQTT_PASSWORD_FILE"] = passFile
	env["BRIDGE_STATUSPAGE_TOKEN"] = spToken
	env["BRIDGE_LOG_LEVEL"] = "trace"
	env["BRIDGE_STATUSPAGE_RETRY_WINDOW"] = "3s"
	p2 := startBridge(t, env)
	mqtttest.PublishWith(t, mqtttest.PublishOptions{URL: broker.URL(), Username: "bridge", Password: "the-right-one"}, capiTopic, uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "dead letter for the 401", func() bool { return dead.unique() == 1 })
	dead.mu.Lock()
	for _, m := range dead.msgs {
		for k, v := range m.Header {
			everything.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
	}
	reason := dead.msgs[0].Header.Get("Bridge-Reason")
	dead.mu.Unlock()
	if !strings.Contains(reason, "401") {
		t.Errorf("dead letter reason %q does not say 401", reason)
	}
	everything.WriteString(scrape(t, p2.http))
	p2.kill(t)
	everything.WriteString(p2.out.String())

	// The check subcommand with the same environment.
	cmd := exec.Command(bridgeBin, "check", filepath.Join("..", "..", "internal", "samples", "periodic-daily_failure_mixed.json"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, _ := cmd.CombinedOutput()
	everything.Write(out)

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

func scrape(t *testing.T, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNATSNkeyFile: NATS authentication by an nkey seed file; the seed never shows.
func TestNATSNkeyFile(t *testing.T) {
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
	ns := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: freePortNumber(t), NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	chat := collect(t, nc, "zuul.>")
	nc.Flush()
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_NATS_NKEY_FILE": seedFile, "BRIDGE_MQTT_CLIENT_ID": "secrets-nkey", "BRIDGE_LOG_LEVEL": "trace"})
	mqtttest.Publish(t, broker.URL(), capiTopic, uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "the report over an nkey-authenticated connection", func() bool { return chat.unique() == 1 })
	if strings.Contains(p.out.String(), string(seed)) {
		t.Fatal("the nkey seed appears in the output")
	}
}
