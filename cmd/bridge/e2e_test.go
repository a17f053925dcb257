package main

// End-to-end tests: the built binary, as a user runs it, against a real mosquitto (started
// by the test with its own config) and a real nats-server (embedded in the test process).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
)

func topicOf(payload []byte) string { return sampleTopic(payload) }

// TestSamplesEndToEnd: with the default rules, every failing periodic sample arrives
// exactly once, on the documented subject with the documented body, and nothing else.
func TestSamplesEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{AnyBroker: true, ClientID: "e2e-samples"})
	got := h.chat
	collectInto(t, h.nc, "zuul-bridge.>", got) // the dead letter, and anything else
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p := h.start()

	all := samples.All()
	for _, s := range all {
		h.publishTo(topicOf(s.Payload), s.Payload)
	}
	h.publishTo("zuul/garbage", []byte("this is not json"))
	p.waitAcked(t, len(all)+1)
	if err := h.nc.Flush(); err != nil {
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
	t.Parallel()
	const n = 3000
	h := newHarness(t, harnessOptions{ClientID: "e2e-kill", LogLevel: "warn",
		// Fewer reports in flight per acknowledgement round: the stream lasts long enough
		// for each SIGKILL to land in its middle, also on a busy machine.
		Env: map[string]string{"BRIDGE_MQTT_RECEIVE_MAXIMUM": "10"}})
	got, env := h.chat, h.env

	// The first run creates the session; then the reports queue in the broker.
	h.start().kill(t)
	h.publish(uniqueFailures(n)...)

	// Each run is killed once the stream reaches its mark, without waiting for /readyz
	// first (the bridge works through the session's backlog before its SUBACK makes it
	// ready). Work must still be outstanding when the SIGKILL lands.
	for _, at := range []int{n / 10, n / 2} {
		p := launchBridge(t, env)
		waitFor(t, 60*time.Second, fmt.Sprintf("%d reports", at), func() bool { return got.unique() >= at })
		p.kill(t)
		landed := deliveredAfterExit(t, h.ns, 1, h.nc, got)
		t.Logf("SIGKILL aimed at %d landed at %d of %d distinct reports", at, landed, n)
		if landed >= n {
			t.Fatalf("SIGKILL aimed at %d landed after all %d reports were delivered: no work outstanding", at, n)
		}
	}
	h.start()
	waitFor(t, 120*time.Second, "all reports", func() bool { return got.unique() == n })
	msgs := len(got.all())
	t.Logf("%d reports delivered as %d messages (%d redelivered after the kills)", n, msgs, msgs-n)
}

// TestSigtermExitsZero: a graceful stop exits 0 and says so, and a clean start and stop
// logs no warning or error (the deliberate close of NATS is not "closed for good").
func TestSigtermExitsZero(t *testing.T) {
	t.Parallel()
	p := newHarness(t, harnessOptions{ClientID: "e2e-term"}).start()
	if code := p.signal(t, syscall.SIGTERM); code != 0 || !strings.Contains(p.out.String(), "stopped") {
		t.Fatalf("exit code %d:\n%s", code, p.out.String())
	}
	if w := warnings(p.out.String()); len(w) > 0 {
		t.Fatalf("a clean start and stop logged warnings or errors:\n%s", strings.Join(w, "\n"))
	}
}

// TestBadConfigurationNamesEveryVariable: all problems at once, by name, exit 2, and no
// secret in the output.
func TestBadConfigurationNamesEveryVariable(t *testing.T) {
	t.Parallel()
	out, code := runBridge(t, []string{
		"BRIDGE_MQTT_URL=http://broker:1883",
		"BRIDGE_NATS_URL=nats://user:s3cr3t-pw@nats:4222",
		"BRIDGE_DELIVERY_DEADLINE=5",
		"BRIDGE_MQTT_RECEIVE_MAXIMUM=lots",
		"BRIDGE_MQTT_PASSWORD=hunter2-secret",
		"BRIDGE_MQTT_PASSWORD_FILE=/nonexistent/pw",
		"BRIDGE_LOG_LEVEL=loud",
		"BRIDGE_STATUSPAGE_URL=ftp://x",
		"BRIDGE_STATUSPAGE_OUTBOX_MAX_AGE=12h", // shorter than the retry window (24h)
	})
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	for _, name := range []string{"BRIDGE_MQTT_URL", "BRIDGE_DELIVERY_DEADLINE", "BRIDGE_MQTT_RECEIVE_MAXIMUM", "BRIDGE_MQTT_PASSWORD:", "BRIDGE_MQTT_PASSWORD_FILE", "BRIDGE_LOG_LEVEL", "BRIDGE_STATUSPAGE_URL",
		"BRIDGE_STATUSPAGE_OUTBOX_MAX_AGE: 12h0m0s must be longer than BRIDGE_STATUSPAGE_RETRY_WINDOW (24h0m0s)"} {
		if !strings.Contains(out, name) {
			t.Errorf("output does not name %s:\n%s", name, out)
		}
	}
	for _, secret := range []string{"hunter2-secret", "s3cr3t-pw"} {
		if strings.Contains(out, secret) {
			t.Errorf("output contains a secret:\n%s", out)
		}
	}
}

func TestInvalidRulesFileStopsStartup(t *testing.T) {
	t.Parallel()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, []byte("routes:\n  - name: chat\n    match: {result: failur}\n    nats: {}\n"))
	out, code := runBridge(t, []string{"BRIDGE_MQTT_URL=mqtt://127.0.0.1:1", "BRIDGE_NATS_URL=nats://127.0.0.1:1", "BRIDGE_RULES_FILE=" + rules, "BRIDGE_HTTP_ADDR=127.0.0.1:0"})
	if code != 2 || !strings.Contains(out, `route "chat"`) || !strings.Contains(out, "match.result") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// runBridge runs the binary with args in the environment env (and PATH) to its end, and
// returns its output and exit code.
func runBridge(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bridgeBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil {
		t.Fatalf("running the bridge: %v", err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func TestCheckShowsRoutesSubjectAndBody(t *testing.T) {
	t.Parallel()
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
	s, code := runBridge(t, nil, append([]string{"check"}, append(files, bad)...)...)
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
	if code != 1 {
		t.Errorf("exit %d, want 1 for the bad payload", code)
	}
}

// TestDemo: `bridge demo` starts with nothing running, shows the failing periodic samples
// arriving on NATS and the incident's whole life on its status page fake (opened once,
// updated, resolved by the passing sample, every call within the API spec), and stops
// cleanly on Ctrl-C. Its log, not a terminal here, is the console format without colour
// codes, at info: one line per report (kept or dropped), no debug lines, no warnings.
func TestDemo(t *testing.T) {
	d := startDemo(t)
	out := d.out
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
	if code := d.signal(t, os.Interrupt); code != 0 { // Ctrl-C
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
	d := startDemo(t, "BRIDGE_LOG_FORMAT=json")
	out := d.out
	waitFor(t, 60*time.Second, "the incident resolved", func() bool {
		return strings.Contains(out.String(), `"message":"incident resolved"`) &&
			strings.Count(out.String(), `"message":"report `) == len(samples.All())
	})
	if code := d.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if w := warnings(out.String()); len(w) > 0 {
		t.Errorf("a clean start and stop logged warnings or errors:\n%s", strings.Join(w, "\n"))
	}
	if !strings.Contains(out.String(), `"message":"stopped"`) {
		t.Errorf("no stopped line:\n%s", out.String())
	}
}

// startDemo runs `bridge demo` with env added to the test's environment. The demo tests
// do not run in parallel (with each other or the rest): the demo takes MQTT's and NATS's
// usual ports (1883, 4222) when they look free, so two demos starting at once could both
// pick them; and the demo replays its samples without waiting for the outbox stream, so on
// a busy machine a report can meet "the outbox stream is not open yet" (a warning, and its
// NATS message published twice), which both tests refuse.
func startDemo(t *testing.T, env ...string) *proc {
	cmd := exec.Command(bridgeBin, "demo")
	cmd.Env = append(append(os.Environ(), "BRIDGE_HTTP_ADDR="+freeLocalAddr(t)), env...)
	return startProc(t, cmd)
}
