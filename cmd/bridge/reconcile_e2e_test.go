package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

// TestReconcileWithZuulWeb: a failure over MQTT opens the incident and the success that
// exists only in zuul-web resolves it within an interval; a failure that exists only in
// zuul-web reaches NATS marked as recovered; a restart republishes nothing.
func TestReconcileWithZuulWeb(t *testing.T) {
	t.Parallel()
	zw := zuulwebfake.New(zuulwebfake.Options{})
	t.Cleanup(zw.Close)
	zw.AddTenant("scs", "periodic-daily", "check")
	o := withStatusPage("e2e-reconcile")                // JetStream: the reconciliation state survives restarts
	o.Rules = statuspageRules + "    reconcile: true\n" // of the route chat
	o.Env = map[string]string{"BRIDGE_ZUUL_URL": zw.URL, "BRIDGE_ZUUL_TENANTS": "scs", "BRIDGE_ZUUL_RECONCILE_INTERVAL": "200ms"}
	h := newHarness(t, o)
	fake, chat := h.fake, h.chat
	p := h.start()
	const capi = "SovereignCloudStack/k8s-cluster-api-provider"
	hourAgo := time.Now().Add(-time.Hour).UTC()

	// The failure arrives over MQTT, and zuul-web has it too: applied once.
	h.publish(sampleBytes(t, "periodic-daily_failure_mixed.json"))
	waitFor(t, 30*time.Second, "incident opened", func() bool { return len(fake.Incidents()) == 1 })
	p.waitAcked(t, 1)
	zw.Add("scs", zuulwebfake.Buildset{UUID: "22799888a7ae82e51b19a6124a096841", Pipeline: "periodic-daily", Result: "FAILURE",
		Message: "Build failed.", EventTime: hourAgo, FirstBuildStart: hourAgo, LastBuildEnd: hourAgo.Add(10 * time.Minute),
		Refs:   []zuulwebfake.Ref{zuulwebfake.BranchRef(capi, "main")},
		Builds: []zuulwebfake.Build{{JobName: "k8s-cluster-api-provider-e2e-conformance", Result: "FAILURE", Voting: true, Start: hourAgo, End: hourAgo.Add(10 * time.Minute)}}})
	// The success exists only in zuul-web (SCS reports failures only).
	later := hourAgo.Add(30 * time.Minute)
	zw.Add("scs", zuulwebfake.Buildset{UUID: "5ecce55000000000000000000000c0de", Pipeline: "periodic-daily", Result: "SUCCESS",
		Message: "Build succeeded.", EventTime: later, FirstBuildStart: later, LastBuildEnd: later.Add(10 * time.Minute),
		Refs:   []zuulwebfake.Ref{zuulwebfake.BranchRef(capi, "main")},
		Builds: []zuulwebfake.Build{{JobName: "k8s-cluster-api-provider-e2e-conformance", Result: "SUCCESS", Voting: true, Start: later, End: later.Add(10 * time.Minute)}}})
	waitFor(t, 30*time.Second, "incident resolved by the success read from zuul-web", func() bool {
		incs := fake.Incidents()
		return len(incs) == 1 && incs[0].EndedAt != nil
	})
	if got := chat.unique(); got != 1 {
		t.Fatalf("%d chat messages, want the MQTT failure once", got)
	}

	// A failure that only zuul-web has: recovered.
	zw.Add("scs", zuulwebfake.Buildset{UUID: "1057000000000000000000000000beef", Pipeline: "periodic-daily", Result: "POST_FAILURE",
		Message: "Build failed.", EventTime: later, FirstBuildStart: later, LastBuildEnd: later.Add(5 * time.Minute),
		Refs:   []zuulwebfake.Ref{zuulwebfake.BranchRef("SovereignCloudStack/standards", "main")},
		Builds: []zuulwebfake.Build{{JobName: "scs-check-scs2-main", Result: "POST_FAILURE", Voting: true, Start: later, End: later.Add(5 * time.Minute), LogURL: "https://logs.example/1/"}}})
	waitFor(t, 30*time.Second, "the recovered failure on NATS", func() bool { return chat.unique() == 2 })
	msgs := chat.all()
	m := msgs[len(msgs)-1]
	var body natspub.Body
	if err := json.Unmarshal(m.Data, &body); err != nil {
		t.Fatalf("report on NATS is not JSON: %v: %s", err, m.Data)
	}
	if m.Header.Get("Bridge-Recovered") != "true" || !body.Recovered || body.Source != "zuul-web" || body.Project != "SovereignCloudStack/standards" || body.Result != "POST_FAILURE" {
		t.Fatalf("recovered message: headers %v body %+v", m.Header, body)
	}
	waitFor(t, 30*time.Second, "its incident", func() bool { return len(fake.Incidents()) == 2 })
	// The round that submitted it has also recorded it once a later round has started
	// (a kill between the two is the at-least-once window: the report would come again).
	rounds := zw.CountRequests("/buildsets")
	waitFor(t, 30*time.Second, "the next rounds", func() bool { return zw.CountRequests("/buildsets") >= rounds+6 })

	// A restart republishes nothing.
	p.kill(t)
	before := zw.CountRequests("/buildsets")
	h.start()
	waitFor(t, 30*time.Second, "several rounds after the restart", func() bool { return zw.CountRequests("/buildsets") >= before+6 })
	if got := chat.unique(); got != 2 {
		t.Fatalf("%d chat messages after the restart, want still 2", got)
	}
	if n := len(chat.all()); n != 2 {
		t.Fatalf("%d messages (with duplicates) after the restart, want 2", n)
	}
	if got := len(fake.Incidents()); got != 2 {
		t.Fatalf("%d incidents, want 2", got)
	}
}
