package main

// The harness of the end-to-end tests: the built binary, and what it runs against (an MQTT
// broker, an embedded nats-server, the status page fake, a rules file), set up in one
// place. A test says what it needs in harnessOptions; newHarness starts it and fills env,
// the bridge's environment, which the test may change before h.start().
//
// Every end-to-end test has brokers, ports and files of its own, so the tests run in
// parallel (t.Parallel); the one thing they share is the built binary.

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

var bridgeBin string

// e2eParallel is how many tests run at once when -test.parallel is not given (its default
// is the number of CPUs): the end-to-end tests mostly wait (for a retry backoff, a
// restart, a broker), so many more of them than there are CPUs fit. With 16, the longest
// (TestStatusPageOutage's subtests, about 50 s of outbox backoff) start within the first
// seconds and set the package's time; with 8 they waited for slots.
const e2eParallel = 16

func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", fmt.Sprint(e2eParallel))
	}
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

// capiTopic is the MQTT topic of the sample reports of k8s-cluster-api-provider.
const capiTopic = "zuul/periodic-daily/SovereignCloudStack/k8s-cluster-api-provider/main/None"

// statuspageRules: the status page route "nightly" (component Zuul) and the NATS route
// "chat", both of periodic-daily.
const statuspageRules = `routes:
  - name: nightly
    match: {pipeline: periodic-daily}
    statuspage: {component: Zuul}
  - name: chat
    match: {pipeline: periodic-daily, result: failure}
    nats: {}
`

// harnessOptions say what a test runs the bridge against. The zero value is mosquitto and
// a nats-server that lacks JetStream.
type harnessOptions struct {
	// AnyBroker: mosquitto where it is installed, else the embedded mochi-mqtt (see
	// anyBroker); for the tests that need no broker restart and no persistence.
	AnyBroker bool
	Mosquitto mqtttest.MosquittoOptions // mosquitto's options (credentials, TLS)

	JetStream  bool            // the nats-server has JetStream (a store of its own)
	NATS       *server.Options // the nats-server's options (auth, TLS, a port of the test's choosing); nil: a free port
	NATSDown   bool            // the nats-server is not started until h.startNATS()
	NATSConn   []nats.Option   // how the test's own NATS connection logs in
	NoNATSConn bool            // the test has no NATS connection (it could not log in)

	StatusPage *statuspagefake.Options // a status page fake (h.fake), with a 1 s timeout of the bridge's calls
	Rules      string                  // the rules file's content; "" is the built-in rules

	ClientID string // BRIDGE_MQTT_CLIENT_ID
	LogLevel string // BRIDGE_LOG_LEVEL; "" is debug (launchBridge)
	Env      map[string]string
}

// harness is what newHarness started.
type harness struct {
	t         *testing.T
	opts      harnessOptions
	broker    *mqtttest.Mosquitto // nil on mochi
	brokerURL string              // where h.publish publishes
	natsOpts  *server.Options
	ns        *server.Server // nil while NATSDown
	nc        *nats.Conn     // the test's own connection
	// chat collects what arrives on zuul.>, dead on the dead-letter subject, from the
	// start of the NATS server (or its latest h.startNATS).
	chat, dead *collector
	fake       *statuspagefake.Fake
	env        map[string]string // the bridge's environment
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, opts: o}
	if o.StatusPage != nil {
		h.fake = statuspagefake.New(t, *o.StatusPage)
	}
	if o.AnyBroker {
		h.brokerURL = anyBroker(t)
	} else {
		h.broker = mqtttest.StartMosquitto(t, o.Mosquitto)
		h.brokerURL = h.broker.URL()
	}
	h.natsOpts = o.NATS
	if h.natsOpts == nil {
		h.natsOpts = natsOptions(t)
	}
	if o.JetStream {
		h.natsOpts.JetStream, h.natsOpts.StoreDir = true, t.TempDir()
	}
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", h.natsOpts.Port)
	if !o.NATSDown {
		h.startNATS()
		natsURL = h.ns.ClientURL()
	}
	h.env = map[string]string{"BRIDGE_MQTT_URL": h.brokerURL, "BRIDGE_NATS_URL": natsURL}
	if o.ClientID != "" {
		h.env["BRIDGE_MQTT_CLIENT_ID"] = o.ClientID
	}
	if o.LogLevel != "" {
		h.env["BRIDGE_LOG_LEVEL"] = o.LogLevel
	}
	if o.Rules != "" {
		h.env["BRIDGE_RULES_FILE"] = h.file("rules.yaml", o.Rules)
	}
	if h.fake != nil {
		h.env["BRIDGE_STATUSPAGE_URL"] = h.fake.URL()
		h.env["BRIDGE_STATUSPAGE_TIMEOUT"] = "1s"
	}
	maps.Copy(h.env, o.Env)
	return h
}

// natsOptions are a nats-server's options on a free port the test knows (to start a
// server on it again).
func natsOptions(t *testing.T) *server.Options {
	return &server.Options{Host: "127.0.0.1", Port: freePortNumber(t), NoLog: true, NoSigs: true}
}

// startNATS starts the nats-server (again, on the same port), connects the test to it and
// starts h.chat and h.dead afresh.
func (h *harness) startNATS() {
	h.t.Helper()
	o := *h.natsOpts
	h.ns = natstest.StartWith(h.t, &o)
	if h.opts.NoNATSConn {
		return
	}
	h.nc = natsConn(h.t, h.ns.ClientURL(), h.opts.NATSConn...)
	h.chat = collect(h.t, h.nc, "zuul.>")
	h.dead = collect(h.t, h.nc, "zuul-bridge.deadletter")
	if err := h.nc.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// file writes a file of the test's own and returns its path.
func (h *harness) file(name, content string) string {
	path := filepath.Join(h.t.TempDir(), name)
	writeFile(h.t, path, []byte(content))
	return path
}

// envWith is h.env with the given variables (name, value, name, value, ...) changed.
func (h *harness) envWith(kv ...string) map[string]string {
	env := maps.Clone(h.env)
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

// start runs the bridge with h.env and waits until it is ready.
func (h *harness) start() *bridgeProc {
	h.t.Helper()
	return startBridge(h.t, h.env)
}

// replicas starts two bridges (client ids replica-0 and replica-1) that share the MQTT
// subscription and the incident key bucket, each with h.env and the variables kv.
func (h *harness) replicas(kv ...string) []*bridgeProc {
	h.t.Helper()
	var procs []*bridgeProc
	for _, id := range []string{"replica-0", "replica-1"} {
		procs = append(procs, startBridge(h.t, h.envWith(append([]string{"BRIDGE_MQTT_CLIENT_ID", id,
			"BRIDGE_MQTT_TOPIC", "$share/bridges/zuul/#", "BRIDGE_STATUSPAGE_KV_BUCKET", "zuul-bridge-incidents"}, kv...)...)))
	}
	return procs
}

// publish sends reports to capiTopic.
func (h *harness) publish(payloads ...[]byte) {
	h.t.Helper()
	h.publishTo(capiTopic, payloads...)
}

// publishTo sends payloads to topic, with the broker's credentials.
func (h *harness) publishTo(topic string, payloads ...[]byte) {
	h.t.Helper()
	mqtttest.PublishWith(h.t, mqtttest.PublishOptions{URL: h.brokerURL, Username: h.opts.Mosquitto.Username, Password: h.opts.Mosquitto.Password},
		topic, payloads...)
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

// natsConn connects the test to NATS, reconnecting for ever (the tests stop and start
// servers).
func natsConn(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return natstest.Connect(t, url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)...)
}

// syncBuffer is a log sink the code under test and the test share.
type syncBuffer = testenv.Buffer

// proc is a process the test started (the bridge, the demo) with its output.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startProc starts cmd with its output collected; at the end of the test it is killed,
// and its output shown if the test failed.
func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		awaitExit(t, p.exited, "the process after SIGKILL")
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(cmd.Path), tail(p.out.String(), 60))
		}
	})
	return p
}

// signal sends sig and waits up to 30 s for the exit; it returns the exit code.
func (p *proc) signal(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v: %v", sig, err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30s after %v", sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	awaitExit(t, p.exited, "the process after SIGKILL")
}

// exitedEarly fails the test if the process has exited.
func (p *proc) exitedEarly(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("%s exited:\n%s", filepath.Base(p.cmd.Path), tail(p.out.String(), 60))
	default:
	}
}

type bridgeProc struct {
	*proc
	http string
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

func freePortNumber(t *testing.T) int {
	addr := freeLocalAddr(t)
	var port int
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port)
	return port
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
	addr := freeLocalAddr(t)
	cmd := exec.Command(bridgeBin)
	cmd.Env = append(os.Environ(), "BRIDGE_HTTP_ADDR="+addr, "BRIDGE_LOG_LEVEL=debug")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return &bridgeProc{proc: startProc(t, cmd), http: addr}
}

// awaitReady waits until /readyz says ready; it fails the test if the bridge exits.
func (p *bridgeProc) awaitReady(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, "bridge ready", func() bool {
		p.exitedEarly(t)
		return p.ready() == 200
	})
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

// get answers a GET of the bridge's path: the status code (0 if there was no answer)
// and the body.
func (p *bridgeProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + p.http + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *bridgeProc) status(path string) int {
	resp, err := http.Get("http://" + p.http + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (p *bridgeProc) ready() int   { return p.status("/readyz") }
func (p *bridgeProc) healthz() int { return p.status("/healthz") }

// metricLines calls f with each line of the bridge's /metrics; false if it cannot be read.
func (p *bridgeProc) metricLines(f func(line string)) bool {
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f(sc.Text())
	}
	return sc.Err() == nil
}

// sample finds one sample of the bridge's /metrics: name is the plain name or the name
// with its labels in exposition order (sorted by name). found is false while the sample
// does not exist, read false if /metrics cannot be read.
func (p *bridgeProc) sample(name string) (value string, found, read bool) {
	read = p.metricLines(func(line string) {
		if v, ok := strings.CutPrefix(line, name+" "); ok && !found {
			value, found = v, true
		}
	})
	return value, found, read
}

// series reads one sample of the bridge's /metrics (see sample); ok is false while the
// sample does not exist or /metrics cannot be read.
func (p *bridgeProc) series(t *testing.T, name string) (v float64, ok bool) {
	t.Helper()
	s, found, read := p.sample(name)
	if !found || !read {
		return 0, false
	}
	if _, err := fmt.Sscan(s, &v); err != nil {
		t.Fatalf("%s %s: %v", name, s, err)
	}
	return v, true
}

// metric reads one sample value of the bridge's /metrics (0 if it does not exist, -1 if
// /metrics cannot be read).
func (p *bridgeProc) metric(t *testing.T, name string) float64 {
	s, _, read := p.sample(name)
	if !read {
		return -1
	}
	var f float64
	fmt.Sscan(s, &f)
	return f
}

// metricSum reads the bridge's /metrics and sums every sample of name, with or without
// labels; -1 if /metrics cannot be read.
func (p *bridgeProc) metricSum(name string) float64 {
	var sum float64
	if !p.metricLines(func(line string) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{")) {
			return
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err == nil {
			sum += v
		}
	}) {
		return -1
	}
	return sum
}

// waitAcked waits until the bridge has acknowledged n reports.
func (p *bridgeProc) waitAcked(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d reports acknowledged", n), func() bool {
		return p.metric(t, "zuul_bridge_reports_acked_total") == float64(n)
	})
}

// ackedBy is the number of reports the bridges acknowledged together.
func ackedBy(t *testing.T, procs []*bridgeProc) float64 {
	var n float64
	for _, p := range procs {
		n += p.metric(t, "zuul_bridge_reports_acked_total")
	}
	return n
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

// all returns the messages so far.
func (c *collector) all() []*nats.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*nats.Msg(nil), c.msgs...)
}

// first returns the first message (the test has waited for it).
func (c *collector) first() *nats.Msg { return c.all()[0] }
