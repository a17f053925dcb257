package natspub

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func sample(t testing.TB, name string) *zuul.Event {
	t.Helper()
	ev, err := zuul.Decode(samples.Get(name))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	return natstest.Connect(t, url, nats.ReconnectBufSize(-1), nats.MaxReconnects(-1))
}

func TestCorePublish(t *testing.T) {
	s := natstest.Start(t, false)
	nc := connect(t, s.ClientURL())
	sub, err := nc.SubscribeSync("zuul.>")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(nc, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	sink, err := p.Sink("r1", RouteConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ev := sample(t, "periodic-daily_failure_mixed.json")
	if retry, err := sink.Send(context.Background(), ev); err != nil {
		t.Fatalf("send: %v (retry %v)", err, retry)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := "zuul.scs.periodic-daily.SovereignCloudStack/k8s-cluster-api-provider.FAILURE"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
	wantHeader := nats.Header{
		"Nats-Msg-Id": {ev.ID + "/r1"}, "Bridge-Schema": {Schema}, "Bridge-Route": {"r1"},
		"Zuul-Tenant": {"scs"}, "Zuul-Pipeline": {"periodic-daily"}, "Zuul-Project": {"SovereignCloudStack/k8s-cluster-api-provider"},
		"Zuul-Branch": {"main"}, "Zuul-Action": {"failure"}, "Zuul-Result": {"FAILURE"}, "Zuul-Outcome": {"failure"},
		"Zuul-Buildset": {"22799888a7ae82e51b19a6124a096841"},
	}
	if !maps.EqualFunc(m.Header, wantHeader, slices.Equal) {
		t.Errorf("headers\n%v\nwant\n%v", m.Header, wantHeader)
	}
	var body Body
	if err := json.Unmarshal(m.Data, &body); err != nil {
		t.Fatal(err)
	}
	if body.Schema != Schema || body.ID != ev.ID || len(body.FailedJobs) != 2 || body.Raw != nil || body.Timestamp == nil {
		t.Errorf("body %+v", body)
	}
	wantSummary := "FAILURE periodic-daily SovereignCloudStack/k8s-cluster-api-provider@main [scs]: 2 of 3 jobs failed (k8s-cluster-api-provider-e2e-conformance: FAILURE, k8s-cluster-api-provider-scs-compliance-1.27: FAILURE non-voting) https://zuul.sovereignit.cloud/t/scs/buildset/22799888a7ae82e51b19a6124a096841"
	if body.Summary != wantSummary {
		t.Errorf("summary\n%s\nwant\n%s", body.Summary, wantSummary)
	}
}

// A recovered report says so in a header of its own, and a line break in a value cannot
// end the header block.
func TestMessageHeadersRecoveredAndSafe(t *testing.T) {
	ev := sample(t, "periodic-daily_failure_mixed.json")
	subject, err := CompileSubject("zuul.{tenant}")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMessage(ev, "r1", subject, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Header["Bridge-Recovered"]; ok || len(m.Header) != 11 {
		t.Errorf("headers of a report from MQTT: %v, want 11 without Bridge-Recovered", m.Header)
	}
	ev.Recovered, ev.Branch = true, "stable\r\nX-Injected: 1"
	if m, err = NewMessage(ev, "r1", subject, false); err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("Bridge-Recovered"); got != "true" || len(m.Header) != 12 {
		t.Errorf("Bridge-Recovered %q in %v, want \"true\" and 12 headers", got, m.Header)
	}
	if got := m.Header.Get("Zuul-Branch"); got != "stable  X-Injected: 1" {
		t.Errorf("Zuul-Branch %q, want the line break replaced by spaces", got)
	}
}

func TestJetStreamPublishDeduplicates(t *testing.T) {
	s := natstest.Start(t, true)
	nc := connect(t, s.ClientURL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZUUL", Subjects: []string{"zuul.>"}, Duplicates: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewPublisher(nc, zerolog.Nop())
	sink, _ := p.Sink("r1", RouteConfig{Subject: "zuul.{pipeline}.{project}", IncludeRaw: true})
	ev := sample(t, "periodic-hourly_post_failure.json")
	for range 2 { // a redelivered report
		if _, err := sink.Send(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
	m, err := st.GetLastMsgForSubject(ctx, "zuul.>")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(m.Data, &body); err != nil || len(body["raw"]) < 100 {
		t.Fatalf("raw payload missing: %v", err)
	}
}

func TestPublishWhileDisconnectedIsRetryable(t *testing.T) {
	s := natstest.Start(t, false)
	nc := connect(t, s.ClientURL())
	p, _ := NewPublisher(nc, zerolog.Nop())
	sink, _ := p.Sink("r1", RouteConfig{})
	s.Shutdown()
	s.WaitForShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	retry, err := sink.Send(ctx, sample(t, "periodic-daily_failure_mixed.json"))
	if err == nil || !retry {
		t.Fatalf("send while NATS is down: retry=%v err=%v; want a retryable error", retry, err)
	}
}
