package natspub

import (
	"context"
	"encoding/json"
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
	if got := m.Header.Get("Nats-Msg-Id"); got != ev.ID+"/r1" {
		t.Errorf("Nats-Msg-Id %q", got)
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
