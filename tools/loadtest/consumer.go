package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/tools/internal/procs"
)

// consumer is the process under test: the bridge or the minimal forwarder. Both read
// mqttTopic and publish to NATS subjects under natsPrefix.
type consumer struct {
	name    string
	proc    *procs.Proc
	httpURL string // bridge only: /metrics
}

const (
	mqttTopic  = "zuul/scs/periodic-daily"
	natsPrefix = "zbench"
)

// rulesYAML routes every report to core NATS (the harness starts no JetStream).
const rulesYAML = `# zuul-bridge load test: every report to NATS.
routes:
  - name: everything
    nats:
      subject: "` + natsPrefix + `.{tenant}.{pipeline}.{project}.{result}"
`

// statuspageRulesYAML adds a status page route for the -statuspage share of reports.
const statuspageRulesYAML = `  - name: incidents
    match: {project: "` + statuspageProject + `"}
    statuspage: {component: Zuul}
`

func startBridge(ctx context.Context, bin, dir, mqttURL, natsURL string, recvMax int, logLevel, statuspageURL string, pprof bool, extraEnv string) (*consumer, error) {
	rules := filepath.Join(dir, "rules.yaml")
	ry := rulesYAML
	if statuspageURL != "" {
		ry += statuspageRulesYAML
	}
	if err := os.WriteFile(rules, []byte(ry), 0o600); err != nil {
		return nil, err
	}
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(port)
	env := []string{
		"BRIDGE_MQTT_URL=" + mqttURL,
		"BRIDGE_MQTT_TOPIC=zuul/#",
		"BRIDGE_NATS_URL=" + natsURL,
		"BRIDGE_RULES_FILE=" + rules,
		"BRIDGE_MQTT_CLIENT_ID=zb-load-bridge",
		"BRIDGE_MQTT_RECEIVE_MAXIMUM=" + strconv.Itoa(recvMax),
		"BRIDGE_HTTP_ADDR=" + httpAddr,
		"BRIDGE_LOG_LEVEL=" + logLevel,
	}
	if statuspageURL != "" {
		env = append(env, "BRIDGE_STATUSPAGE_URL="+statuspageURL)
	}
	if pprof {
		env = append(env, "BRIDGE_HTTP_PPROF=true")
	}
	if extraEnv != "" {
		env = append(env, strings.Split(extraEnv, ",")...)
	}
	p, err := procs.Start("zuul-bridge", filepath.Join(dir, "bridge.log"), env, bin)
	if err != nil {
		return nil, err
	}
	c := &consumer{name: "zuul-bridge", proc: p, httpURL: "http://" + httpAddr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.httpURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			p.Stop(5 * time.Second)
			return nil, fmt.Errorf("zuul-bridge not ready after 30s:\n%s", p.Tail(15))
		}
		select {
		case <-p.Exited:
			return nil, fmt.Errorf("zuul-bridge exited:\n%s", p.Tail(15))
		case <-ctx.Done():
			p.Stop(5 * time.Second)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// acked reads zuul_bridge_reports_acked_total from the bridge's /metrics (-1 if unknown).
func (c *consumer) acked() float64 { return c.metric("zuul_bridge_reports_acked_total") }

// metric reads an unlabelled metric from the bridge's /metrics (-1 if unknown).
func (c *consumer) metric(name string) float64 {
	if c.httpURL == "" {
		return -1
	}
	resp, err := http.Get(c.httpURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// startForwarder re-executes this program in forwarder mode and waits for its "ready".
func startForwarder(ctx context.Context, dir, mqttURL, natsURL string, recvMax int, extraEnv string) (*consumer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "forwarder.log")
	var env []string
	if extraEnv != "" {
		env = strings.Split(extraEnv, ",")
	}
	p, err := procs.Start("forwarder", logFile, env, self, "-forwarder",
		"-fwd-mqtt", mqttURL, "-fwd-nats", natsURL, "-fwd-topic", "zuul/#",
		"-fwd-subject", natsPrefix+".raw", "-recvmax", strconv.Itoa(recvMax))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, _ := os.ReadFile(logFile); strings.Contains(string(b), "forwarder ready") {
			return &consumer{name: "forwarder", proc: p}, nil
		}
		if time.Now().After(deadline) {
			p.Stop(5 * time.Second)
			return nil, fmt.Errorf("forwarder not ready after 30s:\n%s", p.Tail(15))
		}
		select {
		case <-p.Exited:
			return nil, fmt.Errorf("forwarder exited:\n%s", p.Tail(15))
		case <-ctx.Done():
			p.Stop(5 * time.Second)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
