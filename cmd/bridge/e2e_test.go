package main

// End-to-end tests: the built binary, as a user runs it, against a real mosquitto (started
// by the test with its own config) and a real nats-server (embedded in the test process).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"
)

var bridgeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zuul-bridge-e2e-")
	if err != nil {
		panic(err)
	}
	bridgeBin = filepath.Join(dir, "bridge")
	build := exec.Command("go", "build", "-o", bridgeBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the bridge:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type bridgeProc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	http   string
	exited chan struct{}
}

// writeFile writes a file the test needs (0600), failing the test if it cannot.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("setup: %v", err)
	}
}

func freeLocalAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBridge runs the binary with env (BRIDGE_HTTP_ADDR is set here) and waits until
// /readyz says ready.
func startBridge(t *testing.T, env map[string]string) *bridgeProc {
	t.Helper()
	p := launchBridge(t, env)
	p.awaitReady(t)
	return p
}

// launchBridge runs the binary with env (BRIDGE_HTTP_ADDR is set here) and returns at once.
func launchBridge(t *testing.T, env map[string]string) *bridgeProc {
	t.Helper()
	p := &bridgeProc{out: &syncBuffer{}, http: freeLocalAddr(t), exited: make(chan struct{})}
	p.cmd = exec.Command(bridgeBin)
	p.cmd.Env = append(os.Environ(), "BRIDGE_HTTP_ADDR="+p.http, "BRIDGE_LOG_LEVEL=debug")
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		awaitExit(t, p.exited, "the bridge after SIGKILL")
		if t.Failed() {
			t.Logf("bridge output:\n%s", tail(p.out.String(), 60))
		}
	})
	return p
}

// awaitReady waits until /readyz says ready; it fails the test if the bridge exits.
func (p *bridgeProc) awaitReady(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, "bridge ready", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("bridge exited: %s", p.out.String())
		default:
		}
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (p *bridgeProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	awaitExit(t, p.exited, "the bridge after SIGKILL")
}

// awaitExit waits for exited to close, or fails the test after 30s.
func awaitExit(t *testing.T, exited <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: no exit within 30s", what)
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// waitFor polls cond until it holds or the deadline passes: it awaits an event
// (a message count, a port), it does not time anything.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric reads one sample value of the bridge's /metrics ("" labels: the plain name).
func (p *bridgeProc) metric(t *testing.T, name string) float64 {
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// collector counts what arrives on NATS.
type collector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	ids  map[string]int
}

func collect(t *testing.T, nc *nats.Conn, subject string) *collector {
	return collectInto(t, nc, subject, &collector{ids: map[string]int{}})
}

func collectInto(t *testing.T, nc *nats.Conn, subject string, c *collector) *collector {
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.ids[m.Header.Get("Nats-Msg-Id")]++
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *collector) unique() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func topicOf(payload []byte) string { return sampleTopic(payload) }

// TestSamplesEndToEnd: with the default rules, every failing periodic sample arrives
// exactly once, on the documented subject with the documented body, and nothing else.
func TestSamplesEndToEnd(t *testing.T) {
	brokerURL := anyBroker(t)
	ns := natstest.Start(t, false)
	nc := natsConn(t, ns.ClientURL())
	got := collect(t, nc, "zuul.>")
	collectInto(t, nc, "zuul-bridge.>", got)
	nc.Flush()
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": brokerURL, "BRIDGE_NATS_URL": ns.ClientURL(), "BRIDGE_MQTT_CLIENT_ID": "e2e-samples"})

	all := samples.All()
	for _, s := range all {
		mqtttest.Publish(t, brokerURL, topicOf(s.Payload), s.Payload)
	}
	mqtttest.Publish(t, brokerURL, "zuul/garbage", []byte("this is not json"))
	waitFor(t, 30*time.Second, "every report settled", func() bool {
		return p.metric(t, "zuul_bridge_reports_acked_total") == float64(len(all)+1)
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	lintMetrics(t, p.http)
	want := map[string]string{ // subject -> sample
		"zuul.scs.periodic-daily.SovereignCloudStack/k8s-cluster-api-provider.FAILURE":      "",
		"zuul.scs.periodic-daily.SovereignCloudStack/standards.FAILURE":                     "",
		"zuul.scs.periodic-hourly.SovereignCloudStack/standards.FAILURE":                    "",
		"zuul.scs.periodic-daily.SovereignCloudStack/k8s-cluster-api-provider.CONFIG_ERROR": "",
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	var reports, deadLetters int
	for _, m := range got.msgs {
		if m.Subject == "zuul-bridge.deadletter" {
			deadLetters++
			if string(m.Data) != "this is not json" || m.Header.Get("Bridge-Topic") != "zuul/garbage" || !strings.HasPrefix(m.Header.Get("Bridge-Reason"), "not_json") {
				t.Errorf("dead letter %q %v", m.Data, m.Header)
			}
			continue
		}
		reports++
		if _, ok := want[m.Subject]; !ok {
			t.Errorf("unexpected subject %s", m.Subject)
		}
		var b natspub.Body
		if err := json.Unmarshal(m.Data, &b); err != nil {
			t.Fatal(err)
		}
		if b.Schema != natspub.Schema || b.Outcome != "failure" || !strings.HasPrefix(b.Pipeline, "periodic-") || b.Summary == "" || m.Header.Get("Nats-Msg-Id") != b.ID+"/periodic-failures" {
			t.Errorf("body %+v headers %v", b, m.Header)
		}
	}
	// 6 failing periodic samples: mixed, large, timed out, config error, legacy 4.6, hourly.
	if reports != 6 || len(got.ids) != 6+1 {
		t.Errorf("%d reports (%d distinct ids), want the 6 failing periodic samples exactly once", reports, len(got.ids))
	}
	if deadLetters != 1 {
		t.Errorf("%d dead letters, want 1", deadLetters)
	}
}

// lintMetrics checks /metrics against Prometheus naming conventions and for unbounded
// labels (no report ids, uuids or URLs in label values).
func lintMetrics(t *testing.T, addr string) {
	t.Helper()
	text := scrape(t, addr)
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	uuidish := regexp.MustCompile(`="[^"]*([0-9a-f]{32}|https?://)[^"]*"`)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "zuul_bridge_") && uuidish.MatchString(line) {
			t.Errorf("unbounded label value: %s", line)
		}
	}
	for _, name := range []string{"zuul_bridge_reports_received_total", "zuul_bridge_reports_decoded_total", "zuul_bridge_reports_rejected_total",
		"zuul_bridge_route_matched_total", "zuul_bridge_deliveries_total", "zuul_bridge_delivery_duration_seconds_bucket",
		"zuul_bridge_mqtt_connected", "zuul_bridge_nats_connected", "zuul_bridge_seconds_since_last_report",
		"zuul_bridge_pipeline_last_buildset_end_timestamp_seconds",
		"zuul_bridge_dead_lettered_total"} {
		if !strings.Contains(text, "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// anyBroker is mosquitto where it is installed, else the embedded mochi-mqtt: the tests
// that need no broker restart and no persistence still run on a machine without mosquitto.
// Under CI=true mosquitto is required (a missing one fails the test).
func anyBroker(t *testing.T) string {
	if os.Getenv("BRIDGE_TEST_BROKER") == "mochi" { // to try this path where mosquitto exists
		return mqtttest.StartMochi(t)
	}
	if testenv.InCI() {
		return mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{}).URL()
	}
	if _, err := exec.LookPath("mosquitto"); err == nil {
		return mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{}).URL()
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{}).URL()
	}
	t.Log("mosquitto not installed: using the embedded mochi-mqtt broker")
	return mqtttest.StartMochi(t)
}

// uniqueFailures makes n distinct failing periodic reports (distinct buildset uuids).
func uniqueFailures(n int) [][]byte {
	var base []byte
	for _, s := range samples.All() {
		if s.Name == "periodic-daily_failure_mixed.json" {
			base = s.Payload
		}
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Replace(base, []byte(`"uuid": "22799888a7ae82e51b19a6124a096841"`), fmt.Appendf(nil, `"uuid": "%032x"`, i+1), 1)
	}
	return out
}

// TestKillNineLosesNothing: the bridge is SIGKILLed twice while thousands of reports are
// in flight; after each restart it resumes from the broker session, and every report
// reaches NATS (some twice, none zero times).
func TestKillNineLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const n = 3000
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	ns := natstest.Start(t, false)
	nc := natsConn(t, ns.ClientURL())
	got := collect(t, nc, "zuul.>")
	nc.Flush()
	env := map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(), "BRIDGE_MQTT_CLIENT_ID": "e2e-kill", "BRIDGE_LOG_LEVEL": "warn",
		// Fewer reports in flight per acknowledgement round: the stream lasts long enough
		// for each SIGKILL to land in its middle, also on a busy machine.
		"BRIDGE_MQTT_RECEIVE_MAXIMUM": "10"}

	// The first run creates the session; then the reports queue in the broker.
	startBridge(t, env).kill(t)
	mqtttest.Publish(t, broker.URL(), "zuul/periodic-daily/SovereignCloudStack/k8s-cluster-api-provider/main/None", uniqueFailures(n)...)

	// Each run is killed once the stream reaches its mark, without waiting for /readyz
	// first (the bridge works through the session's backlog before its SUBACK makes it
	// ready). Work must still be outstanding when the SIGKILL lands.
	for _, at := range []int{n / 10, n / 2} {
		p := launchBridge(t, env)
		waitFor(t, 60*time.Second, fmt.Sprintf("%d reports", at), func() bool { return got.unique() >= at })
		p.kill(t)
		landed := deliveredAfterExit(t, ns, 1, nc, got)
		t.Logf("SIGKILL aimed at %d landed at %d of %d distinct reports", at, landed, n)
		if landed >= n {
			t.Fatalf("SIGKILL aimed at %d landed after all %d reports were delivered: no work outstanding", at, n)
		}
	}
	startBridge(t, env)
	waitFor(t, 120*time.Second, "all reports", func() bool { return got.unique() == n })
	got.mu.Lock()
	t.Logf("%d reports delivered as %d messages (%d redelivered after the kills)", n, len(got.msgs), len(got.msgs)-n)
	got.mu.Unlock()
}

// TestSigtermExitsZero: a graceful stop exits 0 and says so, and a clean start and stop
// logs no warning or error (the deliberate close of NATS is not "closed for good").
func TestSigtermExitsZero(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	ns := natstest.Start(t, false)
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(), "BRIDGE_MQTT_CLIENT_ID": "e2e-term"})
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p.out.String(), "stopped") {
		t.Fatalf("exit code %d:\n%s", code, p.out.String())
	}
	if w := warnings(p.out.String()); len(w) > 0 {
		t.Fatalf("a clean start and stop logged warnings or errors:\n%s", strings.Join(w, "\n"))
	}
}

// TestBadConfigurationNamesEveryVariable: all problems at once, by name, exit 2, and no
// secret in the output.
func TestBadConfigurationNamesEveryVariable(t *testing.T) {
	cmd := exec.Command(bridgeBin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"BRIDGE_MQTT_URL=http://broker:1883",
		"BRIDGE_NATS_URL=nats://user:s3cr3t-pw@nats:4222",
		"BRIDGE_DELIVERY_DEADLINE=5",
		"BRIDGE_MQTT_RECEIVE_MAXIMUM=lots",
		"BRIDGE_MQTT_PASSWORD=hunter2-secret",
		"BRIDGE_MQTT_PASSWORD_FILE=/nonexistent/pw",
		"BRIDGE_LOG_LEVEL=loud",
		"BRIDGE_STATUSPAGE_URL=ftp://x",
		"BRIDGE_STATUSPAGE_OUTBOX_MAX_AGE=12h", // shorter than the retry window (24h)
	}
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	for _, name := range []string{"BRIDGE_MQTT_URL", "BRIDGE_DELIVERY_DEADLINE", "BRIDGE_MQTT_RECEIVE_MAXIMUM", "BRIDGE_MQTT_PASSWORD:", "BRIDGE_MQTT_PASSWORD_FILE", "BRIDGE_LOG_LEVEL", "BRIDGE_STATUSPAGE_URL",
		"BRIDGE_STATUSPAGE_OUTBOX_MAX_AGE: 12h0m0s must be longer than BRIDGE_STATUSPAGE_RETRY_WINDOW (24h0m0s)"} {
		if !strings.Contains(string(out), name) {
			t.Errorf("output does not name %s:\n%s", name, out)
		}
	}
	for _, secret := range []string{"hunter2-secret", "s3cr3t-pw"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("output contains a secret:\n%s", out)
		}
	}
}

func TestInvalidRulesFileStopsStartup(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, []byte("routes:\n  - name: chat\n    match: {result: failur}\n    nats: {}\n"))
	cmd := exec.Command(bridgeBin)
	cmd.Env = []string{"BRIDGE_MQTT_URL=mqtt://127.0.0.1:1", "BRIDGE_NATS_URL=nats://127.0.0.1:1", "BRIDGE_RULES_FILE=" + rules, "BRIDGE_HTTP_ADDR=127.0.0.1:0"}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), `route "chat"`) || !strings.Contains(string(out), "match.result") {
		t.Fatalf("exit %d:\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

func TestCheckShowsRoutesSubjectAndBody(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, s := range samples.All() {
		if s.Name == "periodic-daily_failure_mixed.json" || s.Name == "check_failure_pr.json" {
			f := filepath.Join(dir, s.Name)
			writeFile(t, f, s.Payload)
			files = append(files, f)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, []byte(`{"tenant": 5}`))
	cmd := exec.Command(bridgeBin, append([]string{"check"}, append(files, bad)...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, _ := cmd.CombinedOutput()
	s := string(out)
	for _, want := range []string{
		"built-in default rules: 1 route(s), valid",
		"route periodic-failures: MATCH",
		"nats subject: zuul.scs.periodic-daily.SovereignCloudStack/k8s-cluster-api-provider.FAILURE",
		`"schema": "zuul-bridge.event/v1"`,
		"Nats-Msg-Id: 22799888a7ae82e51b19a6124a096841-FAILURE/periodic-failures",
		`route periodic-failures: no match: pipeline "check"`,
		"not a Zuul report",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("check output lacks %q:\n%s", want, s)
		}
	}
	if cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("exit %d, want 1 for the bad payload", cmd.ProcessState.ExitCode())
	}
}

// TestDemo: `bridge demo` starts with nothing running, shows the failing periodic samples
// arriving on NATS and the incident's whole life on its status page fake (opened once,
// updated, resolved by the passing sample, every call within the API spec), and stops
// cleanly on Ctrl-C. Its log, not a terminal here, is the console format without colour
// codes, at info: one line per report (kept or dropped), no debug lines, no warnings.
func TestDemo(t *testing.T) {
	cmd := exec.Command(bridgeBin, "demo")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "BRIDGE_HTTP_ADDR="+freeLocalAddr(t))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); awaitExit(t, exited, "the demo after SIGKILL") }()
	waitFor(t, 60*time.Second, "the demo output", func() bool {
		s := out.String()
		return strings.Count(s, "\nNATS zuul.scs.periodic-") == 6 && strings.Contains(s, "\nSTATUS PAGE PATCH /incidents/")
	})
	s := out.String()
	if n := strings.Count(s, "\nSTATUS PAGE POST /incidents: 201 \"Nightly checks of SovereignCloudStack/k8s-cluster-api-provider"); n != 1 {
		t.Errorf("%d incidents opened for the one failing key, want 1:\n%s", n, s)
	}
	if !strings.Contains(s, `/updates: 201 "Resolved"`) || !strings.Contains(s, ": 204 ended at ") {
		t.Errorf("the incident was not resolved with a closing update:\n%s", s)
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop on Ctrl-C")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if strings.Contains(out.String(), "against the API spec") {
		t.Errorf("the status page fake saw calls outside the API spec:\n%s", out.String())
	}
	s = out.String()
	if strings.Contains(s, "\x1b[") {
		t.Errorf("colour codes in output that is not a terminal:\n%q", s)
	}
	kept, dropped := strings.Count(s, " INF report kept "), strings.Count(s, " INF report dropped: no route matches ")
	if kept+dropped != len(samples.All()) || kept == 0 || dropped == 0 {
		t.Errorf("%d reports kept and %d dropped in the log, want one line for each of the %d samples:\n%s", kept, dropped, len(samples.All()), s)
	}
	for _, bad := range []string{" DBG ", " WRN ", " ERR "} {
		if strings.Contains(s, bad) {
			t.Errorf("a %q line at the demo's default level:\n%s", strings.TrimSpace(bad), s)
		}
	}
}

// TestDemoSigtermLogsNoWarnings: the demo (MQTT, NATS with JetStream, the outbox and the
// status page) started and stopped with SIGTERM, as Kubernetes stops a pod, exits 0 and
// logs nothing at warn or error; the NATS connection's close is an info line.
func TestDemoSigtermLogsNoWarnings(t *testing.T) {
	cmd := exec.Command(bridgeBin, "demo")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "BRIDGE_HTTP_ADDR="+freeLocalAddr(t), "BRIDGE_LOG_FORMAT=json")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); awaitExit(t, exited, "the demo after SIGKILL") }()
	waitFor(t, 60*time.Second, "the incident resolved", func() bool {
		return strings.Contains(out.String(), `"message":"incident resolved"`) &&
			strings.Count(out.String(), `"message":"report `) == len(samples.All())
	})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop on SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if w := warnings(out.String()); len(w) > 0 {
		t.Errorf("a clean start and stop logged warnings or errors:\n%s", strings.Join(w, "\n"))
	}
	if !strings.Contains(out.String(), `"message":"stopped"`) {
		t.Errorf("no stopped line:\n%s", out.String())
	}
}
