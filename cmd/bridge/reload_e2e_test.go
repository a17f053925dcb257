package main

// End-to-end tests of the rules reload (issue 29): each trigger (SIGHUP, POST /-/reload,
// a ConfigMap-style update of the mounted file) while reports flow, an invalid file
// refused, and the status page routes added and removed live.

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// configMapDir lays out a directory as the kubelet mounts a ConfigMap volume:
//
//	dir/..2026_01_01_00_00_00.000000001/rules.yaml
//	dir/..data -> ..2026_01_01_00_00_00.000000001
//	dir/rules.yaml -> ..data/rules.yaml
type configMapDir struct {
	t   *testing.T
	dir string
	gen int
}

func newConfigMapDir(t *testing.T, content string) *configMapDir {
	c := &configMapDir{t: t, dir: t.TempDir()}
	ts := c.write(content)
	if err := os.Symlink(ts, filepath.Join(c.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/rules.yaml", filepath.Join(c.dir, "rules.yaml")); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *configMapDir) path() string { return filepath.Join(c.dir, "rules.yaml") }

// write puts content into a new timestamped directory and returns its name.
func (c *configMapDir) write(content string) string {
	c.gen++
	ts := fmt.Sprintf("..2026_01_01_00_00_00.%09d", c.gen)
	if err := os.Mkdir(filepath.Join(c.dir, ts), 0o755); err != nil {
		c.t.Fatal(err)
	}
	writeFile(c.t, filepath.Join(c.dir, ts, "rules.yaml"), []byte(content))
	return ts
}

// update swaps ..data atomically to a new directory holding content, and removes the
// old one, as the kubelet does.
func (c *configMapDir) update(content string) {
	old, err := os.Readlink(filepath.Join(c.dir, "..data"))
	if err != nil {
		c.t.Fatal(err)
	}
	ts := c.write(content)
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(c.dir, old)); err != nil {
		c.t.Fatal(err)
	}
}

const (
	rulesV1 = `routes:
  - name: chat-v1
    match: {pipeline: periodic-daily}
    nats: {subject: "v1.{project}"}
`
	rulesV2 = `routes:
  - name: chat-v2
    match: {pipeline: periodic-daily}
    nats: {subject: "v2.{project}"}
`
	// Four problems: a result class and a subject field that do not exist, a name given
	// twice, a route without a sink.
	rulesInvalid = `routes:
  - name: chat-v3
    match: {pipeline: periodic-daily, result: [failed]}
    nats: {subject: "v3.{projekt}"}
  - name: chat-v3
    match: {pipeline: periodic-daily}
`
)

// reloadReports are n failing periodic reports with ids and projects of their own
// (batch tells batches apart).
func reloadReports(t *testing.T, batch, n int) [][]byte {
	base := sampleBytes(t, "periodic-daily_failure_mixed.json")
	var out [][]byte
	for i := range n {
		b := bytes.ReplaceAll(base, []byte("SovereignCloudStack/k8s-cluster-api-provider"), fmt.Appendf(nil, "o/b%d-%d", batch, i))
		b = bytes.Replace(b, []byte(`"uuid": "22799888a7ae82e51b19a6124a096841"`), fmt.Appendf(nil, `"uuid": "%032x"`, batch<<20+i), 1)
		out = append(out, b)
	}
	return out
}

// routeLog records which route delivered each report id.
type routeLog struct {
	mu     sync.Mutex
	routes map[string][]string // report id -> routes, in arrival order
}

func logRoutes(t *testing.T, nc *nats.Conn, subjects ...string) *routeLog {
	l := &routeLog{routes: map[string][]string{}}
	for _, s := range subjects {
		if _, err := nc.Subscribe(s, func(m *nats.Msg) {
			route := m.Header.Get("Bridge-Route")
			id := strings.TrimSuffix(m.Header.Get("Nats-Msg-Id"), "/"+route)
			l.mu.Lock()
			l.routes[id] = append(l.routes[id], route)
			l.mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *routeLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.routes)
}

// byRoute counts the reports per route; a report delivered more than once (or to two
// routes) is an error.
func (l *routeLog) byRoute(t *testing.T) map[string]int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for id, rs := range l.routes {
		if len(rs) != 1 {
			t.Errorf("report %s delivered %d times: %v", id, len(rs), rs)
		}
		out[rs[0]]++
	}
	return out
}

func (p *bridgeProc) post(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+p.http+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestReloadTriggers: each trigger picks up a valid change while reports flow. Nothing is
// lost: every report published is acknowledged and delivered exactly once, by the route
// of the rules in force when it was handled (the one removed or the one added); the
// reports published after the reload took effect go to the new route only.
func TestReloadTriggers(t *testing.T) {
	t.Parallel()
	const chunk, after = 20, 50
	for _, trigger := range []string{"SIGHUP", "POST", "file"} {
		t.Run(trigger, func(t *testing.T) {
			t.Parallel()
			broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
			ns := natstest.Start(t, false)
			got := logRoutes(t, natsConn(t, ns.ClientURL()), "v1.>", "v2.>")
			cm := newConfigMapDir(t, rulesV1)
			env := map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(),
				"BRIDGE_MQTT_CLIENT_ID": "reload-" + trigger, "BRIDGE_RULES_FILE": cm.path(), "BRIDGE_LOG_LEVEL": "info"}
			if trigger == "POST" {
				env["BRIDGE_HTTP_LIFECYCLE"] = "true"
			}
			p := startBridge(t, env)
			if trigger != "POST" {
				if code, body := p.post(t, "/-/reload"); code != http.StatusNotFound || !strings.Contains(body, "BRIDGE_HTTP_LIFECYCLE=true") {
					t.Errorf("POST /-/reload without BRIDGE_HTTP_LIFECYCLE: %d %q, want 404 naming the setting", code, body)
				}
			} else if code, body := p.get(t, "/-/reload"); code != http.StatusMethodNotAllowed || !strings.Contains(body, "POST") {
				t.Errorf("GET /-/reload: %d %q, want 405", code, body)
			}

			// Reports flow, in chunks, until after the change landed.
			published, stop := make(chan struct{}), make(chan struct{})
			var sent atomic.Int64
			go func() {
				defer close(published)
				for batch := 1; ; batch++ {
					select {
					case <-stop:
						return
					default:
					}
					mqtttest.Publish(t, broker.URL(), capiTopic, reloadReports(t, batch, chunk)...)
					sent.Add(chunk)
				}
			}()
			waitFor(t, 30*time.Second, "the first reports delivered", func() bool { return got.count() >= 10 })
			if trigger == "file" {
				cm.update(rulesV2) // the watch reloads
			} else {
				// The watch sees the change too, but only after its debounce (500 ms): the
				// signal or the request reloads first, and the watch finds the file
				// unchanged.
				cm.update(rulesV2)
				if trigger == "SIGHUP" {
					if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
						t.Fatal(err)
					}
				} else {
					code, body := p.post(t, "/-/reload")
					if code != http.StatusOK || !strings.Contains(body, "rules reloaded: 1 route(s); added [chat-v2], removed [chat-v1]") {
						t.Fatalf("POST /-/reload: %d %q", code, body)
					}
				}
			}
			waitFor(t, 30*time.Second, "the reload applied", func() bool {
				return p.metric(t, `zuul_bridge_rules_reloads_total{result="applied"}`) == 1
			})
			applied := sent.Load()
			waitFor(t, 30*time.Second, "reports published after the reload", func() bool { return sent.Load() >= applied+2*chunk })
			close(stop)
			<-published
			// And a batch published once the reload is known to be in force.
			mqtttest.Publish(t, broker.URL(), capiTopic, reloadReports(t, 1000, after)...)
			total := float64(sent.Load() + after)
			waitFor(t, 60*time.Second, "every report acknowledged", func() bool {
				return p.metric(t, "zuul_bridge_reports_acked_total") == total
			})
			waitFor(t, 30*time.Second, "every report delivered", func() bool { return float64(got.count()) == total })
			counts := got.byRoute(t)
			t.Logf("deliveries by route %v", counts)
			if counts["chat-v1"] < 10 || float64(counts["chat-v1"]+counts["chat-v2"]) != total || counts["chat-v2"] < after+2*chunk {
				t.Errorf("deliveries by route %v of %v reports", counts, total)
			}
			got.mu.Lock()
			for i := range after { // the last batch: the new route only
				ids := reportIDs(t, reloadReports(t, 1000, after)[i:i+1])
				if rs := got.routes[ids[0]]; len(rs) != 1 || rs[0] != "chat-v2" {
					t.Errorf("report %s of the second batch went to %v", ids[0], rs)
				}
			}
			got.mu.Unlock()
			if v := p.metric(t, "zuul_bridge_rules_last_reload_successful"); v != 1 {
				t.Errorf("zuul_bridge_rules_last_reload_successful %v", v)
			}
			want := map[string]string{"SIGHUP": "SIGHUP", "POST": "POST /-/reload", "file": "file changed"}[trigger]
			var lines []string
			for _, l := range strings.Split(p.out.String(), "\n") {
				if strings.Contains(l, `"message":"rules reloaded: new reports take the new routes"`) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], `"trigger":"`+want+`"`) {
				t.Errorf("log lines of the reload %q, want one with trigger %q", lines, want)
			}
			select {
			case <-p.exited:
				t.Fatal("the bridge exited")
			default:
			}
			noDataRace(t, p)
		})
	}
}

// noDataRace fails the test if the bridge, built with GOFLAGS=-race, reported a race.
func noDataRace(t *testing.T, p *bridgeProc) {
	t.Helper()
	if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
		t.Error("the bridge reported a data race")
	}
}

// reportIDs decodes the report ids of payloads as the bridge does.
func reportIDs(t *testing.T, payloads [][]byte) []string {
	t.Helper()
	var out []string
	for _, b := range payloads {
		ev, err := decodeForTest(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func decodeForTest(b []byte) (string, error) {
	ev, err := zuul.Decode(b)
	if err != nil {
		return "", err
	}
	return ev.ID, nil
}

// TestReloadRefusesInvalidRules: an invalid file keeps the rules in force (reports still
// go the old way), sets zuul_bridge_rules_last_reload_successful to 0, logs every problem
// and notes it in /readyz; POST /-/reload answers with the problems; fixing the file
// reloads and clears all of it.
func TestReloadRefusesInvalidRules(t *testing.T) {
	t.Parallel()
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	ns := natstest.Start(t, false)
	got := logRoutes(t, natsConn(t, ns.ClientURL()), "v1.>", "v2.>", "v3.>")
	cm := newConfigMapDir(t, rulesV1)
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_MQTT_CLIENT_ID": "reload-invalid", "BRIDGE_RULES_FILE": cm.path(), "BRIDGE_LOG_LEVEL": "info",
		"BRIDGE_HTTP_LIFECYCLE": "true"})
	okAt := p.metric(t, "zuul_bridge_rules_last_reload_success_timestamp_seconds")
	if okAt <= 0 || p.metric(t, "zuul_bridge_rules_last_reload_successful") != 1 {
		t.Fatalf("at start: successful %v at %v", p.metric(t, "zuul_bridge_rules_last_reload_successful"), okAt)
	}
	cm.update(rulesInvalid)
	waitFor(t, 30*time.Second, "the reload refused", func() bool {
		return p.metric(t, "zuul_bridge_rules_last_reload_successful") == 0
	})
	out := p.out.String()
	if !strings.Contains(out, "rules reload refused") || !strings.Contains(out, `\"failed\"`) || !strings.Contains(out, "projekt") ||
		!strings.Contains(out, "also the name") || !strings.Contains(out, "no sink") {
		t.Errorf("the log does not name every problem:\n%s", tail(out, 10))
	}
	code, body := p.get(t, "/readyz")
	if code != 200 || !strings.Contains(body, "rules: the last reload") || !strings.Contains(body, "projekt") {
		t.Errorf("/readyz %d:\n%s", code, body)
	}
	code, body = p.post(t, "/-/reload")
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "projekt") || !strings.Contains(body, "no sink") || !strings.Contains(body, "previous rules stay") {
		t.Errorf("POST /-/reload of the invalid file: %d %q", code, body)
	}
	if n := strings.Count(p.out.String(), "rules reload refused"); n != 1 {
		t.Errorf("the same invalid file logged %d times, want once", n)
	}
	// The old rules still work.
	mqtttest.Publish(t, broker.URL(), capiTopic, reloadReports(t, 1, 5)...)
	waitFor(t, 30*time.Second, "the reports under the old rules", func() bool { return got.count() == 5 })
	if c := got.byRoute(t); c["chat-v1"] != 5 {
		t.Errorf("under the refused file: %v, want chat-v1 only", c)
	}
	if p.metric(t, "zuul_bridge_rules_last_reload_success_timestamp_seconds") != okAt {
		t.Error("the success timestamp moved on a refused reload")
	}
	// Fixed: reloaded, the note gone, the metric 1.
	cm.update(rulesV2)
	waitFor(t, 30*time.Second, "the fixed file reloaded", func() bool {
		return p.metric(t, "zuul_bridge_rules_last_reload_successful") == 1
	})
	if _, body := p.get(t, "/readyz"); strings.Contains(body, "rules:") {
		t.Errorf("/readyz still notes the failed reload:\n%s", body)
	}
	if p.metric(t, "zuul_bridge_rules_last_reload_success_timestamp_seconds") <= okAt {
		t.Error("the success timestamp did not move")
	}
	// The same content again: nothing happens.
	code, body = p.post(t, "/-/reload")
	if code != 200 || !strings.Contains(body, "unchanged") {
		t.Errorf("POST /-/reload of the same file: %d %q", code, body)
	}
	mqtttest.Publish(t, broker.URL(), capiTopic, reloadReports(t, 2, 5)...)
	waitFor(t, 30*time.Second, "the reports under the new rules", func() bool { return got.count() == 10 })
	if c := got.byRoute(t); c["chat-v1"] != 5 || c["chat-v2"] != 5 {
		t.Errorf("by route %v", c)
	}
	if v := p.metric(t, `zuul_bridge_rules_reloads_total{result="applied"}`); v != 1 {
		t.Errorf("applied reloads %v, want 1", v)
	}
	noDataRace(t, p)
}

// TestReloadStatusPageRoutes: a reload adds status page routes (one naming a component
// the status page lacks: reported, held; the other opens its incident), then removes the
// good one: its next report goes nowhere, its open incident is left alone and its outbox
// items are named as a removed route's, with the purge command. A reload that adds it
// back finds its incident (no second one).
func TestReloadStatusPageRoutes(t *testing.T) {
	t.Parallel()
	o := withStatusPage("reload-sp")
	o.Rules = rulesV1
	h := newHarness(t, o)
	fake, broker := h.fake, h.broker
	cm := newConfigMapDir(t, rulesV1)
	h.env["BRIDGE_RULES_FILE"] = cm.path()
	h.env["BRIDGE_HTTP_LIFECYCLE"] = "true"
	p := h.start()
	withStatuspage := rulesV1 + `  - name: nightly
    match: {pipeline: periodic-daily, project: o/a}
    statuspage: {component: Zuul}
  - name: typo
    match: {pipeline: periodic-daily, project: o/b}
    statuspage: {component: Zuull}
`
	cm.update(withStatuspage)
	if code, body := p.post(t, "/-/reload"); code != 200 {
		t.Fatalf("reload: %d %q", code, body)
	}
	waitFor(t, 30*time.Second, "the unknown name reported", func() bool {
		return p.metric(t, `zuul_bridge_statuspage_unknown_names{route="typo"}`) == 1
	})
	mqtttest.Publish(t, broker.URL(), capiTopic, failuresOfProjects(t, "o/a", "o/b")...)
	waitFor(t, 60*time.Second, "the added route's incident", func() bool { return len(fake.Incidents()) == 1 })

	// Removed: the typo route's held item stays in the outbox, named with the purge command.
	cm.update(rulesV1)
	if code, body := p.post(t, "/-/reload"); code != 200 || !strings.Contains(body, "removed [nightly typo]") {
		t.Fatalf("reload: %d %q", code, body)
	}
	waitFor(t, 30*time.Second, "the removed route's items named", func() bool {
		return strings.Contains(p.out.String(), "outbox items of a route that is not in the rules") &&
			strings.Contains(p.out.String(), "nats stream purge ZUUL_BRIDGE_OUTBOX --subject zuul-bridge.outbox.typo")
	})
	if v := p.metric(t, `zuul_bridge_statuspage_unknown_names{route="typo"}`); v != 0 {
		t.Errorf("the removed route's unknown-names gauge %v", v)
	}
	acked := p.metric(t, "zuul_bridge_reports_acked_total")
	// A new failure of the removed route's key: no route of the status page takes it.
	mqtttest.Publish(t, broker.URL(), capiTopic, bytes.ReplaceAll(reloadReports(t, 3, 1)[0], []byte("o/b3-0"), []byte("o/a")))
	waitFor(t, 30*time.Second, "a report after the removal", func() bool {
		return p.metric(t, "zuul_bridge_reports_acked_total") == acked+1
	})
	if incs := fake.Incidents(); len(incs) != 1 || incs[0].EndedAt != nil || len(incs[0].Updates) != 0 {
		t.Fatalf("incidents after the removal: %+v", incs)
	}
	// Back again: the open incident is the key's; a success resolves it.
	cm.update(withStatuspage)
	if code, body := p.post(t, "/-/reload"); code != 200 {
		t.Fatalf("reload: %d %q", code, body)
	}
	success := bytes.ReplaceAll(sampleBytes(t, "periodic-daily_success.json"), []byte("SovereignCloudStack/k8s-cluster-api-provider"), []byte("o/a"))
	mqtttest.Publish(t, broker.URL(), capiTopic, success)
	waitFor(t, 60*time.Second, "the incident resolved", func() bool {
		incs := fake.Incidents()
		return len(incs) == 1 && incs[0].EndedAt != nil
	})
	noDataRace(t, p)
}
