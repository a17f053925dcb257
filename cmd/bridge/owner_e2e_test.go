package main

import (
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

// TestBacklogAndReconcileOneOwner: after a restart with a backlog in the broker, zuul-web
// already has a failure whose MQTT report is still queued behind 200 others. The
// reconciler leaves it to the MQTT path (it ended within the settle time), so it reaches
// NATS once, and not marked recovered.
func TestBacklogAndReconcileOneOwner(t *testing.T) {
	t.Parallel()
	zw := zuulwebfake.New(zuulwebfake.Options{})
	t.Cleanup(zw.Close)
	zw.AddTenant("scs", "periodic-daily")
	h := newHarness(t, harnessOptions{JetStream: true, ClientID: "e2e-owner", LogLevel: "info", Rules: `routes:
  - name: chat
    match: {pipeline: periodic-daily, result: failure}
    nats: {}
    reconcile: true
`, Env: map[string]string{"BRIDGE_ZUUL_URL": zw.URL, "BRIDGE_ZUUL_TENANTS": "scs", "BRIDGE_ZUUL_RECONCILE_INTERVAL": "100ms"}})
	chat := h.chat
	h.start().kill(t) // the session exists; what comes now queues in the broker

	backlog := uniqueFailures(201)[1:] // not the sample's own buildset
	report := sampleBytes(t, "periodic-daily_failure_mixed.json")
	h.publish(append(backlog, report)...)
	ended := time.Now().Add(-2 * time.Minute).UTC()
	began := ended.Add(-40 * time.Minute)
	zw.Add("scs", zuulwebfake.Buildset{UUID: "22799888a7ae82e51b19a6124a096841", Pipeline: "periodic-daily", Result: "FAILURE",
		Message: "Build failed.", EventTime: began, FirstBuildStart: began, LastBuildEnd: ended,
		Refs: []zuulwebfake.Ref{zuulwebfake.BranchRef("SovereignCloudStack/k8s-cluster-api-provider", "main")},
		Builds: []zuulwebfake.Build{{JobName: "k8s-cluster-api-provider-e2e-conformance", Result: "FAILURE", Voting: true,
			Start: began, End: ended}}})

	p := h.start()
	waitFor(t, 60*time.Second, "the backlog and the report", func() bool { return chat.unique() == len(backlog)+1 })
	rounds := zw.CountRequests("/buildsets")
	waitFor(t, 30*time.Second, "more reconcile rounds", func() bool { return zw.CountRequests("/buildsets") >= rounds+5 })
	msgs := chat.all()
	if len(msgs) != len(backlog)+1 {
		t.Fatalf("%d messages for %d reports: a report was published twice", len(msgs), len(backlog)+1)
	}
	for _, m := range msgs {
		if m.Header.Get("Bridge-Recovered") != "" {
			t.Fatalf("message %s marked recovered although its MQTT report arrived", m.Header.Get("Nats-Msg-Id"))
		}
	}
	if v := p.metric(t, "zuul_bridge_reconcile_recovered_total"); v > 0 {
		t.Errorf("recovered_total %v", v)
	}
}
