package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

// publishRC publishes one QoS 1 message and returns the PUBACK's reason code (MQTT v5):
// 0x10 "no matching subscribers" says the broker acknowledged it and dropped it.
func publishRC(t *testing.T, brokerURL, topic string, payload []byte) byte {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		t.Fatalf("dial the broker: %v", err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: fmt.Sprintf("sharedsub-pub-%d", time.Now().UnixNano()), CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer func() {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		<-c.Done()
	}()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return r.ReasonCode
}

// TestSharedSubscriptionBrokerRestartReconciled: two replicas on a shared subscription
// ($share/bridges/zuul/#) with reconciliation. mosquitto (persistence on) restarts; it
// restores the replicas' sessions but not their shared subscription, so a failing report
// published before a replica has subscribed again is acknowledged to the publisher
// (PUBACK 0x10, no matching subscribers) and dropped. The replicas are held (SIGSTOP)
// across the restart so that this window is certain, not a race with their reconnect.
// The lost failure still reaches NATS exactly once, marked recovered, through the
// reconciliation from zuul-web once BRIDGE_ZUUL_SETTLE has passed; a report delivered
// over MQTT before the restart, which zuul-web also has, is not published again.
func TestSharedSubscriptionBrokerRestartReconciled(t *testing.T) {
	zw := zuulwebfake.New(zuulwebfake.Options{})
	t.Cleanup(zw.Close)
	zw.AddTenant("scs", "periodic-daily")
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	ns := natstest.Start(t, true) // JetStream: the reconciliation's bucket, shared by the replicas
	nc := natsConn(t, ns.ClientURL())
	chat := collect(t, nc, "zuul.>")
	nc.Flush()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, []byte(`routes:
  - name: chat
    match: {pipeline: periodic-daily, result: failure}
    nats: {}
    reconcile: true
`))
	var replicas []*bridgeProc
	for _, id := range []string{"sharedsub-0", "sharedsub-1"} {
		replicas = append(replicas, startBridge(t, map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(),
			"BRIDGE_MQTT_CLIENT_ID": id, "BRIDGE_MQTT_TOPIC": "$share/bridges/zuul/#", "BRIDGE_RULES_FILE": rules,
			"BRIDGE_ZUUL_URL": zw.URL, "BRIDGE_ZUUL_TENANTS": "scs", "BRIDGE_ZUUL_RECONCILE_INTERVAL": "200ms",
			"BRIDGE_ZUUL_SETTLE": "2s", "BRIDGE_LOG_LEVEL": "info"}))
	}
	acked := func() float64 {
		return replicas[0].metric(t, "zuul_bridge_reports_acked_total") + replicas[1].metric(t, "zuul_bridge_reports_acked_total")
	}

	// Before the restart the shared subscription delivers; zuul-web has that buildset too
	// (added once it was applied, so that it is the MQTT copy that counts).
	const capi = "SovereignCloudStack/k8s-cluster-api-provider"
	if rc := publishRC(t, broker.URL(), capiTopic, sampleBytes(t, "periodic-daily_failure_mixed.json")); rc != 0 {
		t.Fatalf("PUBACK reason 0x%02x before the restart, want 0", rc)
	}
	waitFor(t, 30*time.Second, "the first failure over MQTT", func() bool { return chat.unique() == 1 && acked() == 1 })
	hourAgo := time.Now().Add(-time.Hour).UTC()
	zw.Add("scs", zuulwebfake.Buildset{UUID: "22799888a7ae82e51b19a6124a096841", Pipeline: "periodic-daily", Result: "FAILURE",
		Message: "Build failed.", EventTime: hourAgo, FirstBuildStart: hourAgo, LastBuildEnd: hourAgo.Add(10 * time.Minute),
		Refs:   []zuulwebfake.Ref{zuulwebfake.BranchRef(capi, "main")},
		Builds: []zuulwebfake.Build{{JobName: "k8s-cluster-api-provider-e2e-conformance", Result: "FAILURE", Voting: true, Start: hourAgo, End: hourAgo.Add(10 * time.Minute)}}})

	// The replicas are held while the broker restarts and the failure is published.
	for _, p := range replicas {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP: %v", err)
		}
	}
	cont := func() {
		for _, p := range replicas {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)
	broker.Restart(t)
	const project = "SovereignCloudStack/standards"
	lost := failuresOfProjects(t, project)[0] // buildset 00000000000000000000000000abc000
	rc := publishRC(t, broker.URL(), "zuul/periodic-daily/"+project+"/main/None", lost)
	if rc != 0x10 {
		t.Fatalf("PUBACK reason 0x%02x for the report published before the replicas subscribed again, want 0x10 (no matching subscribers): "+
			"the broker kept the shared subscription across its restart, so this test no longer shows the loss\n%s", rc, broker.Log())
	}
	ended := time.Now().UTC().Truncate(time.Second) // zuul-web's times have seconds
	began := ended.Add(-30 * time.Minute)
	zw.Add("scs", zuulwebfake.Buildset{UUID: "00000000000000000000000000abc000", Pipeline: "periodic-daily", Result: "FAILURE",
		Message: "Build failed.", EventTime: began, FirstBuildStart: began, LastBuildEnd: ended,
		Refs:   []zuulwebfake.Ref{zuulwebfake.BranchRef(project, "main")},
		Builds: []zuulwebfake.Build{{JobName: "scs-check-scs2-main", Result: "FAILURE", Voting: true, Start: began, End: ended}}})
	cont()
	for _, p := range replicas {
		p.awaitReady(t)
	}

	// Dropped by the broker: the report never comes over MQTT; the reconciliation finds it
	// in zuul-web once it has settled.
	waitFor(t, 60*time.Second, "the lost failure recovered from zuul-web", func() bool { return chat.unique() == 2 })
	if since := time.Since(ended); since < 2*time.Second {
		t.Errorf("recovered %s after the buildset ended, before BRIDGE_ZUUL_SETTLE (2s)", since)
	}
	rounds := zw.CountRequests("/buildsets")
	waitFor(t, 30*time.Second, "more reconcile rounds on both replicas", func() bool { return zw.CountRequests("/buildsets") >= rounds+10 })
	chat.mu.Lock()
	defer chat.mu.Unlock()
	if len(chat.msgs) != 2 {
		var ids []string
		for _, m := range chat.msgs {
			ids = append(ids, m.Header.Get("Nats-Msg-Id"))
		}
		t.Fatalf("%d messages for 2 failures (%v): one was published twice", len(chat.msgs), ids)
	}
	if n := chat.ids["00000000000000000000000000abc000-FAILURE/chat"]; n != 1 {
		t.Fatalf("the lost failure arrived %d times, want once (ids %v)", n, chat.ids)
	}
	for _, m := range chat.msgs {
		recovered := m.Header.Get("Bridge-Recovered") == "true"
		if want := m.Header.Get("Nats-Msg-Id") != "22799888a7ae82e51b19a6124a096841-FAILURE/chat"; recovered != want {
			t.Errorf("%s: recovered %v, want %v", m.Header.Get("Nats-Msg-Id"), recovered, want)
		}
	}
	if v := acked(); v != 1 {
		t.Errorf("%v reports acknowledged over MQTT, want 1 (the lost one never came)", v)
	}
}
