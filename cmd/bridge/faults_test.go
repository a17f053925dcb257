package main

// The fault suite: the built binary, real brokers, the status page fake, a fault injected on
// purpose; what arrived is counted on the NATS side and in the fake. A report may arrive
// twice, never zero times.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// TestBrokerRestartDuringStream: mosquitto (persistent) restarts while reports flow; the
// bridge is not ready while it is down, reconnects, its session survives, every report
// arrives. The whole stream is published before the stop, and the broker stops while
// part of it is still undelivered: those reports cross the restart end to end.
func TestBrokerRestartDuringStream(t *testing.T) {
	t.Parallel()
	const n = 1000
	h := newHarness(t, harnessOptions{ClientID: "faults-broker", LogLevel: "info",
		// One report in flight per acknowledgement round: the stream lasts long enough
		// for the stop to land in its middle, also on a busy machine.
		Env: map[string]string{"BRIDGE_MQTT_RECEIVE_MAXIMUM": "1"}})
	got := h.chat
	p := h.start()
	h.publish(uniqueFailures(n)...)
	waitFor(t, 30*time.Second, "first reports", func() bool { return got.unique() >= n/10 })
	h.broker.Stop(t)
	waitFor(t, 30*time.Second, "/readyz 503 while the broker is down", func() bool { return p.ready() == 503 })
	// What the bridge took in before the stop it may still deliver; once it has settled
	// all of it, what NATS has is all that can arrive without the broker.
	waitFor(t, 30*time.Second, "the reports taken in before the stop settled", func() bool {
		return p.metricSum("zuul_bridge_deliveries_total") == p.metricSum("zuul_bridge_reports_received_total")
	})
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	before := got.unique()
	t.Logf("%d of %d reports delivered before the broker came back", before, n)
	if before >= n {
		t.Fatalf("all %d reports were delivered before the broker stopped: none crosses the restart", n)
	}
	h.broker.Restart(t)
	waitFor(t, 60*time.Second, "all reports after the broker restart", func() bool { return got.unique() == n })
	waitFor(t, 30*time.Second, "ready again", func() bool { return p.ready() == 200 })
}

// TestNATSOutage: while NATS is down nothing is acknowledged, /readyz says not ready, the
// work in flight is bounded; when NATS is back every report arrives.
func TestNATSOutage(t *testing.T) {
	t.Parallel()
	const n = 100
	h := newHarness(t, harnessOptions{ClientID: "faults-nats", LogLevel: "info", Env: map[string]string{"BRIDGE_MQTT_RECEIVE_MAXIMUM": "10"}})
	p := h.start()
	h.ns.Shutdown()
	h.ns.WaitForShutdown()
	waitFor(t, 30*time.Second, "/readyz 503", func() bool { return p.ready() == 503 })
	// From here until NATS is back, the acknowledged and received counts are read
	// again and again: the claim holds for the whole outage, not one moment of it.
	const acked, received = "zuul_bridge_reports_acked_total", "zuul_bridge_reports_received_total"
	watch := watchMetrics(p, acked, received)
	h.publish(uniqueFailures(n)...)
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
	h.startNATS() // on the same port, with a new h.chat
	waitFor(t, 60*time.Second, "every report after NATS came back", func() bool { return h.chat.unique() == n })
	waitFor(t, 30*time.Second, "/readyz 200", func() bool { return p.ready() == 200 })
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

// withStatusPage is the set-up of the status page tests: a status page fake, the rules
// statuspageRules, NATS with JetStream (the outbox), log level info.
func withStatusPage(clientID string) harnessOptions {
	return harnessOptions{StatusPage: &statuspagefake.Options{}, Rules: statuspageRules, JetStream: true, ClientID: clientID, LogLevel: "info"}
}

// TestStatusPageOutage: the status page answers 503, hangs, refuses connections for a
// while; once it is back there is exactly one incident per key.
func TestStatusPageOutage(t *testing.T) {
	t.Parallel()
	for _, fault := range []statuspagefake.Fault{{Status: 503, Message: "unavailable"}, {Hang: true}, {CloseConn: true}} {
		t.Run(fmt.Sprintf("%+v", fault), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, withStatusPage("faults-sp"))
			fake := h.fake
			p := h.start()
			faulted := make(chan struct{}, 1000)
			fake.SetFault(func(*http.Request, []byte) (statuspagefake.Fault, bool) {
				faulted <- struct{}{}
				return fault, true
			})
			projects := []string{"o/a", "o/b", "o/c"}
			h.publish(failuresOfProjects(t, projects...)...)
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
			h.publish(failuresOfProjects(t, projects...)...)
			p.waitAcked(t, 2*len(projects)) // the redelivered reports settled
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
	t.Parallel()
	h := newHarness(t, withStatusPage("faults-400"))
	fake, dead, chat := h.fake, h.dead, h.chat
	p := h.start()
	fake.SetFault(func(r *http.Request, _ []byte) (statuspagefake.Fault, bool) {
		return statuspagefake.Fault{Status: 400, Message: "Bad Request"}, r.Method == "POST" && r.URL.Path == "/incidents"
	})
	reports := failuresOfProjects(t, "o/a", "o/b")
	h.publish(reports[0])
	waitFor(t, 30*time.Second, "dead letter", func() bool { return dead.unique() == 1 })
	m := dead.first()
	if m.Header.Get("Bridge-Sink") != "statuspage" || m.Header.Get("Bridge-Route") != "nightly" ||
		!strings.Contains(m.Header.Get("Bridge-Reason"), "400") || !bytes.Contains(m.Data, []byte("00000000000000000000000000abc000")) {
		t.Fatalf("dead letter headers %v, body %s", m.Header, m.Data)
	}
	fake.SetFault(nil)
	h.publish(reports[1])
	waitFor(t, 30*time.Second, "the next report", func() bool { return len(fake.Incidents()) == 1 && chat.unique() == 2 })
	p.waitAcked(t, 2)
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
	t.Parallel()
	h := newHarness(t, withStatusPage("faults-term"))
	fake := h.fake
	js, err := jetstream.New(h.nc)
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
	h.env["BRIDGE_SHUTDOWN_GRACE"] = grace.String()
	h.env["BRIDGE_DELIVERY_DEADLINE"] = "10m"
	p := h.start()
	projects := []string{"o/a", "o/b", "o/c", "o/d"}
	h.publish(failuresOfProjects(t, projects...)...)
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
	h.start()
	waitFor(t, 60*time.Second, "the unacknowledged reports redelivered to NATS", func() bool {
		info, err := chat.Info(t.Context())
		return err == nil && info.State.Msgs == uint64(1+len(projects))
	})
	waitFor(t, 60*time.Second, "and applied to the status page", func() bool { return len(fake.Incidents()) == len(projects) })
}

// TestBadInput: each kind of bad payload is logged with its topic and reason, counted,
// dead-lettered and acknowledged; the process stays up and the next good report goes through.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{AnyBroker: true, ClientID: "faults-input", Env: map[string]string{"BRIDGE_MAX_PAYLOAD_BYTES": "200000"}})
	dead, chat := h.dead, h.chat
	p := h.start()
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
		h.publishTo("zuul/bad/"+name, payload)
	}
	h.publish(uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "dead letters and the good report", func() bool {
		return dead.unique() == len(bad) && chat.unique() == 1
	})
	p.waitAcked(t, len(bad)+1)
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
	t.Parallel()
	certs := mqtttest.GenerateCerts(t)
	tlsConfig := func() *tls.Config {
		c, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, CaFile: certs.CAFile, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	natsOpts := natsOptions(t)
	natsOpts.TLSConfig, natsOpts.TLSVerify = tlsConfig(), true
	o := withStatusPage("faults-tls")
	o.Mosquitto.TLS = &mqtttest.MosquittoTLS{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, CAFile: certs.CAFile, RequireClientCert: true}
	o.NATS = natsOpts
	o.NATSConn = []nats.Option{nats.RootCAs(certs.CAFile), nats.ClientCert(certs.ClientCertFile, certs.ClientKeyFile)}
	h := newHarness(t, o)
	target, err := url.Parse(h.fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	proxy.TLS = tlsConfig()
	proxy.StartTLS()
	t.Cleanup(proxy.Close)

	h.env["BRIDGE_NATS_URL"] = strings.Replace(h.ns.ClientURL(), "nats://", "tls://", 1)
	h.env["BRIDGE_STATUSPAGE_URL"] = proxy.URL
	h.env["BRIDGE_MQTT_URL"] = h.broker.TLSURL()
	for _, p := range []string{"MQTT", "NATS", "STATUSPAGE"} {
		h.env["BRIDGE_"+p+"_CA_FILE"] = certs.CAFile
		h.env["BRIDGE_"+p+"_CERT_FILE"] = certs.ClientCertFile
		h.env["BRIDGE_"+p+"_KEY_FILE"] = certs.ClientKeyFile
	}
	h.start()
	h.publish(uniqueFailures(1)...) // over the plain listener
	waitFor(t, 30*time.Second, "report over TLS on NATS and the status page", func() bool {
		return h.chat.unique() == 1 && len(h.fake.Incidents()) == 1
	})
}

// TestStartsWhileBrokersAreDown: unlike a relay that exits when its first connection
// fails, the bridge starts with neither MQTT nor NATS reachable, stays alive (healthy, not
// ready), and works as soon as both come up.
func TestStartsWhileBrokersAreDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{NATSDown: true, ClientID: "faults-cold", LogLevel: "info"})
	h.broker.Stop(t)
	p := launchBridge(t, h.env)
	waitFor(t, 30*time.Second, "/healthz while nothing is reachable", func() bool { return p.healthz() == 200 })
	if p.ready() != 503 {
		t.Fatal("ready without brokers")
	}
	p.exitedEarly(t)
	h.startNATS()
	h.broker.Restart(t)
	waitFor(t, 60*time.Second, "ready once both are up", func() bool { return p.ready() == 200 })
	h.publish(uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "the first report", func() bool { return h.chat.unique() == 1 })
}
