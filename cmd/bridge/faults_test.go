package main

// The fault suite: the built binary, real brokers, the status page fake, a fault injected on
// purpose; what arrived is counted on the NATS side and in the fake. A report may arrive
// twice, never zero times.

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

const capiTopic = "zuul/periodic-daily/SovereignCloudStack/k8s-cluster-api-provider/main/None"

func natsConn(t *testing.T, url string) *nats.Conn {
	t.Helper()
	return natstest.Connect(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
}

func (p *bridgeProc) ready() int {
	resp, err := http.Get("http://" + p.http + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBrokerRestartDuringStream: mosquitto (persistent) restarts while reports flow; the
// bridge is not ready while it is down, reconnects, its session survives, every report
// arrives. The whole stream is published before the stop, and the broker stops while
// part of it is still undelivered: those reports cross the restart end to end.
func TestBrokerRestartDuringStream(t *testing.T) {
	const n = 1000
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	ns := natstest.Start(t, false)
	nc := natsConn(t, ns.ClientURL())
	got := collect(t, nc, "zuul.>")
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_MQTT_CLIENT_ID": "faults-broker", "BRIDGE_LOG_LEVEL": "info",
		// One report in flight per acknowledgement round: the stream lasts long enough
		// for the stop to land in its middle, also on a busy machine.
		"BRIDGE_MQTT_RECEIVE_MAXIMUM": "1"})
	mqtttest.Publish(t, broker.URL(), capiTopic, uniqueFailures(n)...)
	waitFor(t, 30*time.Second, "first reports", func() bool { return got.unique() >= n/10 })
	broker.Stop(t)
	waitFor(t, 30*time.Second, "/readyz 503 while the broker is down", func() bool { return p.ready() == 503 })
	// What the bridge took in before the stop it may still deliver; once it has settled
	// all of it, what NATS has is all that can arrive without the broker.
	waitFor(t, 30*time.Second, "the reports taken in before the stop settled", func() bool {
		return p.metricSum("zuul_bridge_deliveries_total") == p.metricSum("zuul_bridge_reports_received_total")
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	before := got.unique()
	t.Logf("%d of %d reports delivered before the broker came back", before, n)
	if before >= n {
		t.Fatalf("all %d reports were delivered before the broker stopped: none crosses the restart", n)
	}
	broker.Restart(t)
	waitFor(t, 60*time.Second, "all reports after the broker restart", func() bool { return got.unique() == n })
	waitFor(t, 30*time.Second, "ready again", func() bool { return p.ready() == 200 })
}

// TestNATSOutage: while NATS is down nothing is acknowledged, /readyz says not ready, the
// work in flight is bounded; when NATS is back every report arrives.
func TestNATSOutage(t *testing.T) {
	const n = 100
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	opts := &server.Options{Host: "127.0.0.1", Port: freePortNumber(t), NoLog: true, NoSigs: true}
	ns := natstest.StartWith(t, opts)
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_MQTT_CLIENT_ID": "faults-nats", "BRIDGE_LOG_LEVEL": "info", "BRIDGE_MQTT_RECEIVE_MAXIMUM": "10"})
	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, 30*time.Second, "/readyz 503", func() bool { return p.ready() == 503 })
	// From here until NATS is back, the acknowledged and received counts are read
	// again and again: the claim holds for the whole outage, not one moment of it.
	const acked, received = "zuul_bridge_reports_acked_total", "zuul_bridge_reports_received_total"
	watch := watchMetrics(p, acked, received)
	mqtttest.Publish(t, broker.URL(), capiTopic, uniqueFailures(n)...)
	waitFor(t, 30*time.Second, "reports taken in", func() bool { return p.metricSum(received) >= 10 })
	// The outage lasts until a delivery in flight has failed four times (the reports
	// share one key, so the others wait behind it): work was in flight, and was
	// refused again and again, during the outage.
	waitFor(t, 60*time.Second, "a delivery's 4th failed attempt while NATS is down", func() bool {
		for _, e := range logEntries(p.out.String(), "delivery", "delivery failed, retrying", "NATS is not connected") {
			if e.Attempt >= 4 {
				return true
			}
		}
		return false
	})
	reads, maxima := watch.end(t)
	t.Logf("outage watched over %d reads: max acknowledged %v, max received %v", reads, maxima[acked], maxima[received])
	if reads < 2 {
		t.Fatalf("%d reads during the outage: too few to watch it", reads)
	}
	if maxima[acked] != 0 {
		t.Fatalf("%v reports acknowledged while NATS was down", maxima[acked])
	}
	if maxima[received] > 10 {
		t.Fatalf("%v reports taken in with receive maximum 10: the backlog is not bounded", maxima[received])
	}
	ns2 := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: opts.Port, NoLog: true, NoSigs: true})
	got := collect(t, natsConn(t, ns2.ClientURL()), "zuul.>")
	waitFor(t, 60*time.Second, "every report after NATS came back", func() bool { return got.unique() == n })
	waitFor(t, 30*time.Second, "/readyz 200", func() bool { return p.ready() == 200 })
}

func freePortNumber(t *testing.T) int {
	addr := freeLocalAddr(t)
	var port int
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port)
	return port
}

// failuresOfProjects makes one failing periodic-daily report per project: distinct
// incident keys.
func failuresOfProjects(t *testing.T, projects ...string) [][]byte {
	base := sampleBytes(t, "periodic-daily_failure_mixed.json")
	var out [][]byte
	for i, p := range projects {
		b := bytes.ReplaceAll(base, []byte("SovereignCloudStack/k8s-cluster-api-provider"), []byte(p))
		b = bytes.Replace(b, []byte(`"uuid": "22799888a7ae82e51b19a6124a096841"`), fmt.Appendf(nil, `"uuid": "%032x"`, 0xabc000+i), 1)
		out = append(out, b)
	}
	return out
}

const statuspageRules = `routes:
  - name: nightly
    match: {pipeline: periodic-daily}
    statuspage: {component: Zuul}
  - name: chat
    match: {pipeline: periodic-daily, result: failure}
    nats: {}
`

func statuspageEnv(t *testing.T, broker *mqtttest.Mosquitto, natsURL, spURL, clientID string) map[string]string {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, []byte(statuspageRules))
	return map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": natsURL, "BRIDGE_MQTT_CLIENT_ID": clientID,
		"BRIDGE_RULES_FILE": rules, "BRIDGE_STATUSPAGE_URL": spURL, "BRIDGE_STATUSPAGE_TIMEOUT": "1s", "BRIDGE_LOG_LEVEL": "info"}
}

// TestStatusPageOutage: the status page answers 503, hangs, refuses connections for a
// while; once it is back there is exactly one incident per key.
func TestStatusPageOutage(t *testing.T) {
	for _, fault := range []statuspagefake.Fault{{Status: 503, Message: "unavailable"}, {Hang: true}, {CloseConn: true}} {
		t.Run(fmt.Sprintf("%+v", fault), func(t *testing.T) {
			fake := statuspagefake.New(t, statuspagefake.Options{})
			broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
			ns := natstest.Start(t, true)
			p := startBridge(t, statuspageEnv(t, broker, ns.ClientURL(), fake.URL(), "faults-sp"))
			faulted := make(chan struct{}, 1000)
			fake.SetFault(func(*http.Request, []byte) (statuspagefake.Fault, bool) {
				faulted <- struct{}{}
				return fault, true
			})
			projects := []string{"o/a", "o/b", "o/c"}
			mqtttest.Publish(t, broker.URL(), capiTopic, failuresOfProjects(t, projects...)...)
			for range 6 { // the bridge tried, and retried
				select {
				case <-faulted:
				case <-time.After(30 * time.Second):
					t.Fatal("the bridge did not call the status page")
				}
			}
			fake.SetFault(nil)
			waitFor(t, 60*time.Second, "one incident per key", func() bool { return len(fake.Incidents()) == len(projects) })
			// Redelivery or late retries must not add a second incident for any key.
			mqtttest.Publish(t, broker.URL(), capiTopic, failuresOfProjects(t, projects...)...)
			waitFor(t, 30*time.Second, "the redelivered reports settled", func() bool {
				return p.metric(t, "zuul_bridge_reports_acked_total") == float64(2*len(projects))
			})
			if got := len(fake.Incidents()); got != len(projects) {
				t.Fatalf("%d incidents, want %d", got, len(projects))
			}
		})
	}
}

// TestPermanentSinkFailureIsDeadLettered: a 400 from the status page sends the outbox item
// to the dead-letter subject with the reason (the report, acknowledged once stored, is not
// held back), and the stream goes on.
func TestPermanentSinkFailureIsDeadLettered(t *testing.T) {
	fake := statuspagefake.New(t, statuspagefake.Options{})
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	ns := natstest.Start(t, true)
	nc := natsConn(t, ns.ClientURL())
	dead := collect(t, nc, "zuul-bridge.deadletter")
	chat := collect(t, nc, "zuul.>")
	nc.Flush()
	p := startBridge(t, statuspageEnv(t, broker, ns.ClientURL(), fake.URL(), "faults-400"))
	fake.SetFault(func(r *http.Request, _ []byte) (statuspagefake.Fault, bool) {
		return statuspagefake.Fault{Status: 400, Message: "Bad Request"}, r.Method == "POST" && r.URL.Path == "/incidents"
	})
	reports := failuresOfProjects(t, "o/a", "o/b")
	mqtttest.Publish(t, broker.URL(), capiTopic, reports[0])
	waitFor(t, 30*time.Second, "dead letter", func() bool { return dead.unique() == 1 })
	dead.mu.Lock()
	m := dead.msgs[0]
	dead.mu.Unlock()
	if m.Header.Get("Bridge-Sink") != "statuspage" || m.Header.Get("Bridge-Route") != "nightly" ||
		!strings.Contains(m.Header.Get("Bridge-Reason"), "400") || !bytes.Contains(m.Data, []byte("00000000000000000000000000abc000")) {
		t.Fatalf("dead letter headers %v, body %s", m.Header, m.Data)
	}
	fake.SetFault(nil)
	mqtttest.Publish(t, broker.URL(), capiTopic, reports[1])
	waitFor(t, 30*time.Second, "the next report", func() bool { return len(fake.Incidents()) == 1 && chat.unique() == 2 })
	waitFor(t, 30*time.Second, "both acknowledged", func() bool { return p.metric(t, "zuul_bridge_reports_acked_total") == 2 })
}

// TestGracefulShutdownUnderLoad: SIGTERM while deliveries hang exits 0 within the grace
// period, and what was not delivered was not acknowledged: the next run delivers it. The
// NATS route's subjects are covered by a stream that refuses new messages (full, discard
// new), so every NATS delivery is retried for BRIDGE_DELIVERY_DEADLINE (far longer than the
// bound below): only the grace period can end them in time.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	const grace = 3 * time.Second
	// Generous, so that a slow machine does not fail the test; far below the delivery
	// deadline, so that a shutdown the grace period does not bound fails it.
	const margin = 10 * time.Second
	fake := statuspagefake.New(t, statuspagefake.Options{})
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	ns := natstest.Start(t, true)
	js, err := jetstream.New(natsConn(t, ns.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	chatCfg := jetstream.StreamConfig{Name: "CHAT", Subjects: []string{"zuul.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew}
	chat, err := js.CreateStream(t.Context(), chatCfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "zuul.filler", nil); err != nil { // full from now on
		t.Fatal(err)
	}
	env := statuspageEnv(t, broker, ns.ClientURL(), fake.URL(), "faults-term")
	env["BRIDGE_SHUTDOWN_GRACE"] = grace.String()
	env["BRIDGE_DELIVERY_DEADLINE"] = "10m"
	p := startBridge(t, env)
	projects := []string{"o/a", "o/b", "o/c", "o/d"}
	mqtttest.Publish(t, broker.URL(), capiTopic, failuresOfProjects(t, projects...)...)
	waitFor(t, 30*time.Second, "every report taken in and its NATS delivery retried", func() bool {
		return p.metric(t, "zuul_bridge_reports_received_total") == float64(len(projects)) &&
			p.metric(t, `zuul_bridge_delivery_retries_total{route="chat",sink="nats"}`) >= 1
	})
	if acked := p.metric(t, "zuul_bridge_reports_acked_total"); acked != 0 {
		t.Fatalf("%v reports acknowledged before SIGTERM: no work in flight to cut short", acked)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(grace + margin):
		t.Fatalf("still running %v after SIGTERM with a grace period of %v", grace+margin, grace)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	t.Logf("exited %v after SIGTERM with a grace period of %v", time.Since(start).Round(10*time.Millisecond), grace)
	if !strings.Contains(p.out.String(), "grace period over") {
		t.Errorf("the shutdown did not say that the grace period cut deliveries short:\n%s", tail(p.out.String(), 30))
	}
	chatCfg.MaxMsgs = -1 // room again
	if _, err := js.UpdateStream(t.Context(), chatCfg); err != nil {
		t.Fatal(err)
	}
	startBridge(t, env)
	waitFor(t, 60*time.Second, "the unacknowledged reports redelivered to NATS", func() bool {
		info, err := chat.Info(t.Context())
		return err == nil && info.State.Msgs == uint64(1+len(projects))
	})
	waitFor(t, 60*time.Second, "and applied to the status page", func() bool { return len(fake.Incidents()) == len(projects) })
}

// TestBadInput: each kind of bad payload is logged with its topic and reason, counted,
// dead-lettered and acknowledged; the process stays up and the next good report goes through.
func TestBadInput(t *testing.T) {
	brokerURL := anyBroker(t)
	ns := natstest.Start(t, false)
	nc := natsConn(t, ns.ClientURL())
	dead := collect(t, nc, "zuul-bridge.deadletter")
	chat := collect(t, nc, "zuul.>")
	nc.Flush()
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": brokerURL, "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_MQTT_CLIENT_ID": "faults-input", "BRIDGE_MAX_PAYLOAD_BYTES": "200000"})
	bad := map[string][]byte{
		"not_json":     []byte("<html>502 Bad Gateway</html>"),
		"wrong_shape":  []byte(`{"action": "failure", "tenant": ["scs"], "pipeline": "p", "project": "x", "buildset": {}}`),
		"number":       []byte(`{"action": "failure", "tenant": "scs", "pipeline": 5, "project": "x", "buildset": {}}`),
		"string_bool":  []byte(`{"action": "failure", "tenant": "scs", "pipeline": "p", "project": "x", "buildset": {"builds": [{"voting": "yes"}]}}`),
		"deep":         []byte(`{"action": "failure", "x": ` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`),
		"too_large":    bytes.Repeat([]byte(" "), 200001),
		"invalid_utf8": []byte("{\"action\": \"\xff\"}"),
		"missing":      []byte(`{"hello": "world"}`),
	}
	for name, payload := range bad {
		mqtttest.Publish(t, brokerURL, "zuul/bad/"+name, payload)
	}
	good := uniqueFailures(1)[0]
	mqtttest.Publish(t, brokerURL, capiTopic, good)
	waitFor(t, 30*time.Second, "dead letters and the good report", func() bool {
		return dead.unique() == len(bad) && chat.unique() == 1
	})
	waitFor(t, 30*time.Second, "all acknowledged", func() bool {
		return p.metric(t, "zuul_bridge_reports_acked_total") == float64(len(bad)+1)
	})
	out := p.out.String()
	for name := range bad {
		if !strings.Contains(out, `"topic":"zuul/bad/`+name+`"`) {
			t.Errorf("no log line names the topic of %s", name)
		}
	}
	if p.ready() != 200 {
		t.Fatal("not ready after bad input")
	}
}

// TestTLSEverywhere: MQTT, NATS and the status page over TLS with a private CA and client
// certificates generated in the test.
func TestTLSEverywhere(t *testing.T) {
	certs := mqtttest.GenerateCerts(t)
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{TLS: &mqtttest.MosquittoTLS{
		CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, CAFile: certs.CAFile, RequireClientCert: true}})
	ntls, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, CaFile: certs.CAFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: freePortNumber(t), NoLog: true, NoSigs: true, TLSConfig: ntls, TLSVerify: true,
		JetStream: true, StoreDir: t.TempDir()})
	fake := statuspagefake.New(t, statuspagefake.Options{})
	target, err := url.Parse(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	stls, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, CaFile: certs.CAFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	proxy.TLS = stls
	proxy.StartTLS()
	t.Cleanup(proxy.Close)

	nc, err := nats.Connect(ns.ClientURL(), nats.RootCAs(certs.CAFile), nats.ClientCert(certs.ClientCertFile, certs.ClientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	chat := collect(t, nc, "zuul.>")
	nc.Flush()
	env := statuspageEnv(t, broker, strings.Replace(ns.ClientURL(), "nats://", "tls://", 1), proxy.URL, "faults-tls")
	env["BRIDGE_MQTT_URL"] = broker.TLSURL()
	for _, p := range []string{"MQTT", "NATS", "STATUSPAGE"} {
		env["BRIDGE_"+p+"_CA_FILE"] = certs.CAFile
		env["BRIDGE_"+p+"_CERT_FILE"] = certs.ClientCertFile
		env["BRIDGE_"+p+"_KEY_FILE"] = certs.ClientKeyFile
	}
	startBridge(t, env)
	mqtttest.PublishWith(t, mqtttest.PublishOptions{URL: broker.URL()}, capiTopic, uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "report over TLS on NATS and the status page", func() bool {
		return chat.unique() == 1 && len(fake.Incidents()) == 1
	})
}

// TestStartsWhileBrokersAreDown: unlike a relay that exits when its first connection
// fails, the bridge starts with neither MQTT nor NATS reachable, stays alive (healthy, not
// ready), and works as soon as both come up.
func TestStartsWhileBrokersAreDown(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	broker.Stop(t)
	natsPort := freePortNumber(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	p := &bridgeProc{out: &syncBuffer{}, http: freeLocalAddr(t), exited: make(chan struct{})}
	p.cmd = exec.Command(bridgeBin)
	p.cmd.Env = append(os.Environ(), "BRIDGE_HTTP_ADDR="+p.http, "BRIDGE_MQTT_URL="+broker.URL(), "BRIDGE_NATS_URL="+natsURL,
		"BRIDGE_MQTT_CLIENT_ID=faults-cold")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); awaitExit(t, p.exited, "the bridge after SIGKILL") })
	waitFor(t, 30*time.Second, "/healthz while nothing is reachable", func() bool {
		resp, err := http.Get("http://" + p.http + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if p.ready() != 503 {
		t.Fatal("ready without brokers")
	}
	select {
	case <-p.exited:
		t.Fatalf("the bridge exited:\n%s", p.out.String())
	default:
	}
	ns := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: natsPort, NoLog: true, NoSigs: true})
	broker.Restart(t)
	got := collect(t, natsConn(t, ns.ClientURL()), "zuul.>")
	waitFor(t, 60*time.Second, "ready once both are up", func() bool { return p.ready() == 200 })
	mqtttest.Publish(t, broker.URL(), capiTopic, uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "the first report", func() bool { return got.unique() == 1 })
}
