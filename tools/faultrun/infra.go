package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/tools/internal/procs"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// mosquitto is the broker: its own config on a free port, persistence on, no queue limit.
type mosquitto struct {
	bin, conf, dir string
	addr           string
	mu             sync.Mutex
	p              *procs.Proc
}

func newMosquitto(ctx context.Context, dir string) (*mosquitto, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			return nil, errors.New("mosquitto not found in PATH or /usr/sbin (Debian: apt-get install mosquitto)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	m := &mosquitto{bin: bin, dir: dir, conf: filepath.Join(dir, "mosquitto.conf"), addr: "127.0.0.1:" + strconv.Itoa(port)}
	cfg := strings.Join([]string{
		"listener " + strconv.Itoa(port) + " 127.0.0.1",
		"allow_anonymous true",
		"user root", // started as root it would drop to user mosquitto and fail to write dir
		"log_dest file " + filepath.Join(dir, "mosquitto.log"),
		"log_type error", "log_type warning", "log_type notice", "log_type information", "log_type subscribe",
		"connection_messages true",
		"log_timestamp_format %Y-%m-%dT%H:%M:%S",
		"persistence true",
		"persistence_location " + dir + "/",
		"autosave_interval 1",
		"max_queued_messages 0", // 0 = no limit: the default 1000 drops silently
		"max_queued_bytes 0",
		"max_inflight_messages 100",
		"",
	}, "\n")
	if err := os.WriteFile(m.conf, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return m, m.start(ctx)
}

func (m *mosquitto) url() string { return "mqtt://" + m.addr }

func (m *mosquitto) start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := procs.Start("mosquitto", filepath.Join(m.dir, "mosquitto.out"), nil, m.bin, "-c", m.conf)
	if err != nil {
		return err
	}
	if err := procs.WaitPort(ctx, m.addr, 15*time.Second, p.Exited); err != nil {
		p.Stop(time.Second)
		return fmt.Errorf("mosquitto: %w\n%s", err, p.Tail(10))
	}
	m.p = p
	return nil
}

// stop is SIGTERM, which saves the persistence file.
func (m *mosquitto) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.p.Stop(15 * time.Second)
}

// natsCluster is three nats-server processes with JetStream, routed on loopback, each
// with its own store.
type natsCluster struct {
	bin   string
	dir   string
	nodes []*natsNode
}

type natsNode struct {
	name  string
	port  int
	args  []string
	mu    sync.Mutex
	p     *procs.Proc
	store string
}

func newNATSCluster(ctx context.Context, bin, dir string) (*natsCluster, error) {
	c := &natsCluster{bin: bin, dir: dir}
	var routes []string
	var cports []int
	for range 3 {
		p, err := procs.FreePort()
		if err != nil {
			return nil, err
		}
		cp, err := procs.FreePort()
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &natsNode{port: p})
		cports = append(cports, cp)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cp))
	}
	for i, n := range c.nodes {
		n.name = fmt.Sprintf("n%d", i+1)
		n.store = filepath.Join(dir, "nats-"+n.name)
		n.args = []string{"-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-n", n.name,
			"--cluster_name", "faultrun", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cports[i]),
			"--routes", strings.Join(routes, ","), "-js", "-sd", n.store}
	}
	for _, n := range c.nodes {
		if err := c.start(ctx, n); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *natsCluster) start(ctx context.Context, n *natsNode) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, err := procs.Start("nats-server "+n.name, filepath.Join(c.dir, "nats-"+n.name+".log"), nil, c.bin, n.args...)
	if err != nil {
		return err
	}
	if err := procs.WaitPort(ctx, "127.0.0.1:"+strconv.Itoa(n.port), 15*time.Second, p.Exited); err != nil {
		p.Stop(time.Second)
		return fmt.Errorf("nats-server %s: %w\n%s", n.name, err, p.Tail(10))
	}
	n.p = p
	return nil
}

func (c *natsCluster) kill(n *natsNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.p.Signal(syscall.SIGKILL, 10*time.Second)
}

func (c *natsCluster) urls() string {
	var u []string
	for _, n := range c.nodes {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", n.port))
	}
	return strings.Join(u, ",")
}

func (c *natsCluster) stop() {
	for _, n := range c.nodes {
		n.mu.Lock()
		n.p.Stop(10 * time.Second)
		n.mu.Unlock()
	}
}

// createStream makes the R3 stream the NATS route's reports land in; the first JetStream
// calls time out while the cluster elects its meta leader, so it retries.
func createStream(ctx context.Context, js jetstream.JetStream) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{"zuul.>"},
			Storage: jetstream.FileStorage, Replicas: 3, Duplicates: 2 * time.Minute})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("stream %s: %w", streamName, err)
		}
		time.Sleep(time.Second)
	}
}

const streamName = "FAULTRUN_REPORTS"

// replica is one bridge process, restarted under the same client id.
type replica struct {
	idx      int
	name     string
	bin      string
	env      []string
	httpAddr string
	log      string
	mu       sync.Mutex
	p        *procs.Proc
	starts   int
}

func (r *replica) start(ctx context.Context) error {
	r.mu.Lock()
	p, err := procs.Start(r.name, r.log, r.env, r.bin)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	r.p = p
	r.starts++
	r.mu.Unlock()
	return r.awaitReady(ctx, 60*time.Second)
}

func (r *replica) proc() *procs.Proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

// ready is /readyz: MQTT subscribed and NATS connected.
func (r *replica) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + r.httpAddr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (r *replica) awaitReady(ctx context.Context, d time.Duration) error {
	p := r.proc()
	deadline := time.Now().Add(d)
	for !r.ready() {
		if !p.Running() {
			return fmt.Errorf("%s exited:\n%s", r.name, p.Tail(15))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s:\n%s", r.name, d, p.Tail(15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func newReplicas(bin, dir, mqttURL, natsURLs string, proxies []*pageProxy, rulesFile string) ([]*replica, error) {
	var out []*replica
	for i := range 3 {
		port, err := procs.FreePort()
		if err != nil {
			return nil, err
		}
		r := &replica{idx: i, name: fmt.Sprintf("bridge-%d", i), bin: bin, httpAddr: "127.0.0.1:" + strconv.Itoa(port),
			log: filepath.Join(dir, fmt.Sprintf("bridge-%d.log", i))}
		r.env = []string{
			"BRIDGE_MQTT_URL=" + mqttURL,
			"BRIDGE_MQTT_TOPIC=$share/bridges/zuul/#",
			"BRIDGE_MQTT_CLIENT_ID=" + fmt.Sprintf("faultrun-bridge-%d", i),
			"BRIDGE_NATS_URL=" + natsURLs,
			"BRIDGE_RULES_FILE=" + rulesFile,
			"BRIDGE_STATUSPAGE_URL=" + proxies[i].url,
			"BRIDGE_STATUSPAGE_TIMEOUT=5s",
			// Every stream and bucket of the bridge in three copies.
			"BRIDGE_NATS_JETSTREAM_REPLICAS=3",
			"BRIDGE_SHUTDOWN_GRACE=10s",
			"BRIDGE_HTTP_ADDR=" + r.httpAddr,
			"BRIDGE_LOG_LEVEL=info",
		}
		out = append(out, r)
	}
	return out, nil
}

// natsConnect connects the harness's own client to every node.
func natsConnect(urls, name string) (*nats.Conn, error) {
	return nats.Connect(urls, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.RetryOnFailedConnect(true))
}
