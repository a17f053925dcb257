//go:build !nodemo

package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

//go:embed demo-rules.yaml
var demoRules []byte

// demo runs the production code path (serve) against an embedded MQTT broker (mochi-mqtt)
// and an embedded NATS server, replays the sample Zuul reports, prints what NATS
// receives, and keeps running so a user can publish reports of their own.
func demo(ctx context.Context, stdout, stderr io.Writer) error {
	mqttAddr := freeAddr("127.0.0.1:1883")
	broker := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := broker.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: mqttAddr})); err != nil {
		return err
	}
	if err := broker.Serve(); err != nil {
		return err
	}
	defer broker.Close()

	natsAddr := freeAddr("127.0.0.1:4222")
	host, port, _ := net.SplitHostPort(natsAddr)
	p, _ := strconv.Atoi(port)
	store, err := os.MkdirTemp("", "zuul-bridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(store)
	ns, err := server.NewServer(&server.Options{Host: host, Port: p, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("embedded NATS server did not start")
	}
	defer ns.Shutdown()

	// The user's own BRIDGE_* settings apply (rules file, log level), the brokers are ours.
	if os.Getenv("BRIDGE_RULES_FILE") == "" {
		f := filepath.Join(store, "demo-rules.yaml")
		if err := os.WriteFile(f, demoRules, 0o600); err != nil {
			return err
		}
		os.Setenv("BRIDGE_RULES_FILE", f)
	}
	os.Setenv("BRIDGE_MQTT_URL", "mqtt://"+mqttAddr)
	os.Setenv("BRIDGE_NATS_URL", ns.ClientURL())
	if os.Getenv("BRIDGE_LOG_FORMAT") == "" {
		os.Setenv("BRIDGE_LOG_FORMAT", "console")
	}
	// info: the NATS messages, the outbox, the status page calls and one line per report
	// (kept or dropped, and why) are shown; BRIDGE_LOG_LEVEL=debug adds every delivery.
	if os.Getenv("BRIDGE_LOG_LEVEL") == "" {
		os.Setenv("BRIDGE_LOG_LEVEL", "info")
	}
	if os.Getenv("BRIDGE_HTTP_ADDR") == "" {
		os.Setenv("BRIDGE_HTTP_ADDR", freeAddr("127.0.0.1:8080"))
	}
	if os.Getenv("BRIDGE_STATUSPAGE_URL") == "" {
		fake, err := demoStatuspage(stdout)
		if err != nil {
			return err
		}
		defer func() {
			fake.Close()
			for _, v := range fake.Violations() {
				fmt.Fprintln(stderr, "status page fake: request or answer against the API spec:", v)
			}
		}()
		os.Setenv("BRIDGE_STATUSPAGE_URL", fake.URL())
		os.Setenv("BRIDGE_STATUSPAGE_TOKEN", demoToken)
		fmt.Fprintf(stdout, "no BRIDGE_STATUSPAGE_URL: the status page is an in-process fake of the SCS status page API, %s\n", fake.URL())
	}
	cfg, err := loadConfig()
	if err != nil {
		return configError{err}
	}

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.Subscribe(">", func(m *nats.Msg) {
		if len(m.Subject) > 0 && m.Subject[0] == '$' || m.Subject[:min(5, len(m.Subject))] == "_INBO" {
			return
		}
		if route, ok := strings.CutPrefix(m.Subject, cfg.Statuspage.Outbox.Subject+"."); ok {
			// The outbox: shown once, when stored (its delivery to the worker passes ">" too).
			if !strings.HasPrefix(m.Reply, "$JS.ACK.") {
				fmt.Fprintf(stdout, "OUTBOX %s: status page work of report %s stored\n", route, m.Header.Get("Bridge-Id"))
			}
			return
		}
		var b natspub.Body
		summary := string(m.Data)
		if err := jsonUnmarshal(m.Data, &b); err == nil && b.Summary != "" {
			summary = b.Summary
		}
		fmt.Fprintf(stdout, "NATS %s\n     %s\n", m.Subject, summary)
	})

	ready := func() {
		fmt.Fprintf(stdout, "\nzuul-bridge demo: MQTT broker mqtt://%s, NATS %s, metrics http://%s/metrics\n", mqttAddr, ns.ClientURL(), cfg.HTTP.Addr)
		fmt.Fprintf(stdout, "replaying %d sample Zuul reports; publish your own with e.g.\n  mosquitto_pub -h %s -p %s -q 1 -t zuul/periodic-daily/x -f report.json\nCtrl-C stops.\n\n", len(samples.All()), host, portOf(mqttAddr))
		if err := publishSamples(ctx, "mqtt://"+mqttAddr); err != nil {
			fmt.Fprintln(stderr, "demo publisher:", err)
		}
	}
	return serve(ctx, cfg, newLogger(cfg, stderr), &hooks{ready: ready, reportLevel: zerolog.InfoLevel})
}

// demoToken is the write token of the demo's status page fake.
const demoToken = "demo"

// demoStatuspage starts the status page fake (provisioned like the SCS public status page,
// every request checked against the API spec) and prints each write it answers: the
// incidents the bridge opens, updates and ends, as they would appear on the public page.
func demoStatuspage(stdout io.Writer) (*statuspagefake.Fake, error) {
	return statuspagefake.Start(statuspagefake.Options{Token: demoToken, Answered: func(r statuspagefake.Request) {
		if r.Method == http.MethodGet {
			return
		}
		var b struct {
			DisplayName string `json:"displayName"`
			EndedAt     string `json:"endedAt"`
		}
		_ = jsonUnmarshal(r.Body, &b)
		what := ""
		switch {
		case b.EndedAt != "":
			what = " ended at " + b.EndedAt
		case b.DisplayName != "":
			what = " " + strconv.Quote(b.DisplayName)
		}
		fmt.Fprintf(stdout, "STATUS PAGE %s %s: %d%s\n", r.Method, r.Path, r.Status, what)
	}})
}

// publishSamples sends every sample on the topic Zuul's SCS reporter would use.
func publishSamples(ctx context.Context, broker string) error {
	u, _ := url.Parse(broker)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ClientConfig: paho.ClientConfig{ClientID: "zuul-bridge-demo-publisher"},
	})
	if err != nil {
		return err
	}
	defer cm.Disconnect(context.Background())
	if err := cm.AwaitConnection(ctx); err != nil {
		return err
	}
	for _, s := range samples.All() {
		if _, err := cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: sampleTopic(s.Payload), Payload: s.Payload}); err != nil {
			return err
		}
	}
	return nil
}

// sampleTopic is the topic of SCS's reporter template zuul/{pipeline}/{project}/{branch}/{change}.
func sampleTopic(payload []byte) string {
	ev, err := zuul.Decode(payload)
	if err != nil {
		return "zuul/unknown"
	}
	none := func(s string) string {
		if s == "" {
			return "None"
		}
		return s
	}
	return "zuul/" + ev.Pipeline + "/" + ev.Project + "/" + none(ev.Branch) + "/" + none(ev.Change)
}

// freeAddr returns want if it can be bound, else a free port on the same host.
func freeAddr(want string) string {
	if ln, err := net.Listen("tcp", want); err == nil {
		ln.Close()
		return want
	}
	host, _, _ := net.SplitHostPort(want)
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		return want
	}
	defer ln.Close()
	return ln.Addr().String()
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
