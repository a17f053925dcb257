package main

// The outbox suite: the built binary with JetStream on the NATS server, so that status page
// work goes through the outbox stream; the status page fake fails on purpose.

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	neturl "net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// runsOfProjects makes runs failing reports per project (distinct buildsets), in the
// order run 1 of every project, run 2 of every project, ...
func runsOfProjects(t *testing.T, runs int, projects ...string) [][]byte {
	var out [][]byte
	for r := range runs {
		for _, b := range failuresOfProjects(t, projects...) {
			out = append(out, bytes.Replace(b, []byte(`"uuid": "0000000000000000000000000`), fmt.Appendf(nil, `"uuid": "%025x`, r+1), 1))
		}
	}
	return out
}

// writesFail makes every write to the status page fail with fault, counting the attempts.
func writesFail(fake *statuspagefake.Fake, fault statuspagefake.Fault, attempts chan<- struct{}) {
	fake.SetFault(func(r *http.Request, _ []byte) (statuspagefake.Fault, bool) {
		if r.Method == http.MethodGet {
			return statuspagefake.Fault{}, false
		}
		select {
		case attempts <- struct{}{}:
		default:
		}
		return fault, true
	})
}

// waitIncidents waits until fake has one incident for each of keys, each with updates
// updates (the later runs of its key); more incidents than keys end the wait at once.
func waitIncidents(t *testing.T, limit time.Duration, fake *statuspagefake.Fake, keys, updates int) {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("one incident per key with %d updates", updates), func() bool {
		incs := fake.Incidents()
		if len(incs) != keys {
			return len(incs) > keys
		}
		for _, inc := range incs {
			if len(inc.Updates) != updates {
				return false
			}
		}
		return true
	})
}

// TestOutboxStatusPageDownFromStart: the status page answers 503 to everything, or refuses
// connections, from before the bridge starts. The bridge is healthy and ready at once, the
// NATS route delivers every report and every report is acknowledged meanwhile; once the
// status page is back, every key has exactly one incident with all its runs.
func TestOutboxStatusPageDownFromStart(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"503", "refused"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, withStatusPage("outbox-down"))
			fake := h.fake
			url, up := fake.URL(), func() { fake.SetFault(nil) }
			if mode == "503" {
				fake.SetFault(func(*http.Request, []byte) (statuspagefake.Fault, bool) {
					return statuspagefake.Fault{Status: 503, Message: "unavailable"}, true
				})
			} else { // nothing listens until up: a proxy to the fake then takes the port
				addr := freeLocalAddr(t)
				url = "http://" + addr
				up = func() {
					ln, err := net.Listen("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					target, _ := neturl.Parse(fake.URL())
					srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
					go srv.Serve(ln)
					t.Cleanup(func() { srv.Close() })
				}
			}
			chat := h.chat
			h.env["BRIDGE_STATUSPAGE_URL"] = url
			h.env["BRIDGE_MQTT_RECEIVE_MAXIMUM"] = "4" // a held report would stop the intake at once
			p := h.start()                             // waits for /readyz 200: nothing waited for the status page
			if code, _ := p.get(t, "/healthz"); code != 200 {
				t.Fatalf("/healthz %d while the status page is down", code)
			}
			projects := []string{"o/a", "o/b", "o/c"}
			reports := runsOfProjects(t, 10, projects...)
			h.publish(reports...)
			waitFor(t, 60*time.Second, "every report on NATS and acknowledged while the status page is down", func() bool {
				return chat.unique() == len(reports) && p.metric(t, "zuul_bridge_reports_acked_total") == float64(len(reports))
			})
			waitFor(t, 30*time.Second, "the bridge saying the status page is not reachable", func() bool {
				return strings.Contains(p.out.String(), "status page not reachable")
			})
			if n := len(fake.Incidents()); n != 0 {
				t.Fatalf("%d incidents while the status page was down", n)
			}
			_, body := p.get(t, "/readyz")
			if !strings.Contains(body, "catalogue not read yet") {
				t.Errorf("/readyz body does not say the status page is not read yet:\n%s", body)
			}
			waitFor(t, 30*time.Second, "the outbox depth metric", func() bool {
				return p.metric(t, "zuul_bridge_outbox_depth") == float64(len(reports))
			})
			up()
			waitIncidents(t, 120*time.Second, fake, len(projects), 9)
			if n := len(fake.Incidents()); n != len(projects) {
				t.Fatalf("%d incidents for %d keys", n, len(projects))
			}
			waitFor(t, 30*time.Second, "the outbox empty", func() bool {
				return p.metric(t, "zuul_bridge_outbox_depth") == 0 &&
					p.metric(t, `zuul_bridge_outbox_items_total{outcome="applied",route="nightly"}`) == float64(len(reports))
			})
		})
	}
}

// TestOutboxRetryWindowDeadLetters: the status page refuses writes for longer than the
// retry window; each item is dead-lettered with the reason, and the NATS route and later
// status page work go on.
func TestOutboxRetryWindowDeadLetters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withStatusPage("outbox-window"))
	fake, dead, chat := h.fake, h.dead, h.chat
	h.env["BRIDGE_STATUSPAGE_RETRY_WINDOW"] = "3s"
	attempts := make(chan struct{}, 100)
	writesFail(fake, statuspagefake.Fault{Status: 503, Message: "unavailable"}, attempts)
	p := h.start()
	reports := failuresOfProjects(t, "o/a", "o/b", "o/c")
	h.publish(reports[:2]...)
	waitFor(t, 30*time.Second, "both reports on NATS and acknowledged", func() bool {
		return chat.unique() == 2 && p.metric(t, "zuul_bridge_reports_acked_total") == 2
	})
	waitFor(t, 60*time.Second, "both items dead-lettered", func() bool { return dead.unique() == 2 })
	for _, m := range dead.all() {
		if r := m.Header.Get("Bridge-Reason"); !strings.Contains(r, "retry window of 3s passed") || !strings.Contains(r, "503") ||
			m.Header.Get("Bridge-Route") != "nightly" || m.Header.Get("Bridge-Sink") != "statuspage" {
			t.Errorf("dead letter headers %v", m.Header)
		}
	}
	if len(attempts) < 2 {
		t.Fatalf("%d write attempts before dead-lettering, want retries", len(attempts))
	}
	fake.SetFault(nil)
	h.publish(reports[2])
	waitFor(t, 60*time.Second, "the next report applied", func() bool { return len(fake.Incidents()) == 1 && chat.unique() == 3 })
	if got := p.metric(t, `zuul_bridge_outbox_items_total{outcome="dead_lettered",route="nightly"}`); got != 2 {
		t.Errorf("dead-lettered items metric %v, want 2", got)
	}
}

// TestOutboxSurvivesSigkill: items waiting in the outbox while the status page fails are
// applied after the bridge was SIGKILLed and started again, once per key.
func TestOutboxSurvivesSigkill(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withStatusPage("outbox-kill"))
	fake := h.fake
	h.env["BRIDGE_STATUSPAGE_OUTBOX_ACK_WAIT"] = "2s" // the killed worker's item comes back soon
	attempts := make(chan struct{}, 100)
	writesFail(fake, statuspagefake.Fault{Status: 503}, attempts)
	p := h.start()
	projects := []string{"o/a", "o/b", "o/c"}
	reports := runsOfProjects(t, 2, projects...)
	h.publish(reports...)
	p.waitAcked(t, len(reports))
	select {
	case <-attempts: // the worker holds an item when it is killed
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not try the status page")
	}
	p.kill(t)
	fake.SetFault(nil)
	p = h.start()
	waitIncidents(t, 90*time.Second, fake, len(projects), 1)
	waitFor(t, 30*time.Second, "the outbox empty", func() bool { return p.metric(t, "zuul_bridge_outbox_depth") == 0 })
	if n := len(fake.Incidents()); n != len(projects) {
		t.Fatalf("%d incidents for %d keys", n, len(projects))
	}
}

// TestOutboxTwoReplicasStatusPageDown: two replicas share the MQTT subscription, the key
// bucket and the outbox while the status page is down; afterwards every key has one
// incident, and SIGKILL of one replica loses nothing.
func TestOutboxTwoReplicasStatusPageDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withStatusPage(""))
	fake := h.fake
	attempts := make(chan struct{}, 100)
	writesFail(fake, statuspagefake.Fault{Status: 503}, attempts)
	procs := h.replicas("BRIDGE_STATUSPAGE_OUTBOX_ACK_WAIT", "2s")
	projects := []string{"o/a", "o/b", "o/c", "o/d"}
	reports := runsOfProjects(t, 3, projects...)
	h.publish(reports...)
	waitFor(t, 60*time.Second, "every report acknowledged by one of the replicas", func() bool {
		return ackedBy(t, procs) == float64(len(reports))
	})
	<-attempts
	procs[0].kill(t)
	fake.SetFault(nil)
	waitIncidents(t, 90*time.Second, fake, len(projects), 2)
	if n := len(fake.Incidents()); n != len(projects) {
		t.Fatalf("%d incidents for %d keys", n, len(projects))
	}
}

// TestUnknownComponentHoldsOnlyItsRoute: a route naming a component the status page lacks
// does not stop the bridge: it says so (log, metric, /readyz body, which stays 200), the
// route's work stays in the outbox, and the other routes go on.
func TestUnknownComponentHoldsOnlyItsRoute(t *testing.T) {
	t.Parallel()
	o := withStatusPage("outbox-typo")
	o.Rules = `routes:
  - name: typo
    match: {pipeline: periodic-daily, project: o/a}
    statuspage: {component: Zuull}
  - name: nightly
    match: {pipeline: periodic-daily, project: o/b}
    statuspage: {component: Zuul}
  - name: chat
    match: {pipeline: periodic-daily}
    nats: {}
`
	h := newHarness(t, o)
	fake, chat := h.fake, h.chat
	p := h.start()
	waitFor(t, 30*time.Second, "the unknown name reported", func() bool {
		return p.metric(t, `zuul_bridge_statuspage_unknown_names{route="typo"}`) == 1
	})
	h.publish(failuresOfProjects(t, "o/a", "o/b", "o/c")...)
	waitFor(t, 30*time.Second, "the other routes' work", func() bool { return chat.unique() == 3 && len(fake.Incidents()) == 1 })
	waitFor(t, 30*time.Second, "the held item deferred", func() bool {
		return p.metric(t, `zuul_bridge_outbox_items_total{outcome="deferred",route="typo"}`) >= 1
	})
	code, body := p.get(t, "/readyz")
	if code != 200 || !strings.Contains(body, "route typo") || !strings.Contains(body, `no component named "Zuull"`) {
		t.Fatalf("/readyz %d:\n%s", code, body)
	}
	if !strings.Contains(p.out.String(), `no component named \"Zuull\"`) {
		t.Error("the log does not name the missing component")
	}
	waitFor(t, 30*time.Second, "the held item counted in the outbox", func() bool { return p.metric(t, "zuul_bridge_outbox_depth") == 1 })
	p.exitedEarly(t)
}

// TestCheckOnline: `bridge check -online` reads the status page's catalogue and fails a
// route naming a component the server lacks before anything is deployed; the payload
// output says what would be queued in the outbox.
func TestCheckOnline(t *testing.T) {
	t.Parallel()
	fake := statuspagefake.New(t, statuspagefake.Options{})
	dir := t.TempDir()
	payload := filepath.Join(dir, "failure.json")
	writeFile(t, payload, sampleBytes(t, "periodic-daily_failure_mixed.json"))
	for _, tc := range []struct {
		component string
		code      int
		want      []string
	}{
		{"Zuul", 0, []string{"route nightly: every name exists", "outbox: queued in stream ZUUL_BRIDGE_OUTBOX, subject zuul-bridge.outbox.nightly"}},
		{"Zuull", 2, []string{"route nightly: UNKNOWN NAMES", `no component named "Zuull"`}},
	} {
		rules := filepath.Join(dir, "rules-"+tc.component+".yaml")
		writeFile(t, rules, []byte("routes:\n  - name: nightly\n    match: {pipeline: periodic-daily}\n    statuspage: {component: "+tc.component+"}\n"))
		out, code := runBridge(t, []string{"BRIDGE_STATUSPAGE_URL=" + fake.URL()}, "check", "-online", "-rules", rules, payload)
		if code != tc.code {
			t.Errorf("component %s: exit %d, want %d:\n%s", tc.component, code, tc.code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("component %s: output lacks %q:\n%s", tc.component, w, out)
			}
		}
	}
	if out, code := runBridge(t, []string{"BRIDGE_STATUSPAGE_URL=http://127.0.0.1:1"}, "check", "-online", "-rules", filepath.Join(dir, "rules-Zuul.yaml")); code != 3 {
		t.Errorf("unreachable status page: exit %d, want 3:\n%s", code, out)
	}
}

// TestStartsWithKVBucketWhileNATSIsDown: with the incident key bucket configured and NATS
// unreachable at start, /healthz answers at once and the bridge does not exit; once NATS
// (with JetStream) is up, the bucket and the outbox are opened in the background and a
// failing report opens its incident.
func TestStartsWithKVBucketWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	o := withStatusPage("outbox-cold")
	o.NATSDown = true
	h := newHarness(t, o)
	h.env["BRIDGE_STATUSPAGE_KV_BUCKET"] = "zuul-bridge-incidents"
	p := launchBridge(t, h.env)
	waitFor(t, 30*time.Second, "/healthz while NATS is down", func() bool { return p.healthz() == 200 })
	code, body := p.get(t, "/readyz")
	if code != 503 || !strings.Contains(body, "NATS not connected") || !strings.Contains(body, "waiting for NATS to open the outbox") {
		t.Fatalf("/readyz %d while NATS is down:\n%s", code, body)
	}
	h.startNATS()
	waitFor(t, 60*time.Second, "ready once NATS is up", func() bool { return p.ready() == 200 })
	h.publish(failuresOfProjects(t, "o/a")...)
	waitFor(t, 60*time.Second, "the incident", func() bool { return len(h.fake.Incidents()) == 1 })
	p.exitedEarly(t)
}
