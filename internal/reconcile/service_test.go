package reconcile_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

// TestReportSettledBeforeTheServiceIsReady: a report settled over MQTT while the service
// was still finding its targets (a restart with a backlog) is recorded before the first
// round, which therefore does not publish it again as recovered.
func TestReportSettledBeforeTheServiceIsReady(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	addReal := func(ago time.Duration) zuulwebfake.Buildset { // the service runs on the real clock
		at := time.Now().Add(-ago).UTC()
		bs := zuulwebfake.Buildset{Pipeline: "periodic-daily", EventTime: at, FirstBuildStart: at,
			Refs: []zuulwebfake.Ref{zuulwebfake.BranchRef("SovereignCloudStack/standards", "main")},
			Builds: []zuulwebfake.Build{{JobName: "scs-check-iaas", Result: "SUCCESS", Voting: true, Start: at, End: at.Add(10 * time.Minute)},
				{JobName: "scs-check-kaas", Voting: true, Start: at}}}
		finish(&bs, "FAILURE")
		return e.fake.Add("scs", bs)
	}
	viaMQTT := addReal(3 * time.Hour)
	lost := addReal(2 * time.Hour)
	ns := natstest.Start(t, true)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	submitted := map[string]bool{}
	done := make(chan struct{}, 1)
	svc := reconcile.NewService(reconcile.ServiceOptions{
		Client: e.client, Tenants: []string{"scs"}, Wants: func(string, string) bool { return true },
		Interval: time.Hour, NATS: nc, Bucket: "rec", Log: zerolog.New(zerolog.NewTestWriter(t)),
		Submit: func(_ context.Context, ev *zuul.Event) error {
			mu.Lock()
			submitted[ev.ID] = true
			mu.Unlock()
			if ev.BuildsetUUID == lost.UUID {
				done <- struct{}{}
			}
			return nil
		},
	})
	svc.Settled(&zuul.Event{ID: viaMQTT.UUID + "-FAILURE", Source: zuul.SourceMQTT, Tenant: "scs", Pipeline: "periodic-daily",
		Result: "FAILURE", Outcome: zuul.OutcomeFailure})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { svc.Run(ctx); close(ran) }()
	defer func() { // the service logs through t: it must be done before the test is
		cancel()
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Error("the service did not stop")
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the first round did not submit the lost failure")
	}
	mu.Lock()
	defer mu.Unlock()
	if submitted[viaMQTT.UUID+"-FAILURE"] {
		t.Fatal("the report settled over MQTT before the service was ready was submitted again")
	}
}

// On a server lacking JetStream reconciliation does not start: it says so through NoJetStream, with
// the server's answer, and Run returns instead of reconciling without memory.
func TestServiceNeedsJetStream(t *testing.T) {
	e := newEnv(t, zuulwebfake.Options{})
	nc := natstest.Connect(t, natstest.Start(t, false).ClientURL())
	told := make(chan error, 1)
	svc := reconcile.NewService(reconcile.ServiceOptions{
		Client: e.client, Tenants: []string{"scs"}, Wants: func(string, string) bool { return true },
		Interval: time.Hour, NATS: nc, Bucket: "rec", Log: zerolog.New(zerolog.NewTestWriter(t)),
		Submit:      func(context.Context, *zuul.Event) error { t.Error("submitted without a store"); return nil },
		NoJetStream: func(err error) { told <- err },
	})
	ran := make(chan struct{})
	go func() { svc.Run(t.Context()); close(ran) }()
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return on a server lacking JetStream")
	}
	select {
	case err := <-told:
		if !errors.Is(err, kvstore.ErrNoJetStream) {
			t.Errorf("told %v, want kvstore.ErrNoJetStream", err)
		}
	default:
		t.Error("NoJetStream was not called")
	}
}
