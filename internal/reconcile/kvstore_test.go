package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := natstest.Start(t, true)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestKVStore(t *testing.T) {
	ctx := context.Background()
	js := jetStream(t)
	s, err := reconcile.NewKVStore(ctx, js, "zuul-bridge-reconcile")
	if err != nil {
		t.Fatal(err)
	}
	// Event IDs of every form, including characters a KV key may not hold.
	idsToMark := []string{"4de2c18fe9b344db886195aeca71f6f7-FAILURE", "item uuid-start-bs", "h*>.x y"}
	for _, id := range idsToMark {
		if seen, err := s.Seen(ctx, id); err != nil || seen {
			t.Fatalf("Seen(%q) before MarkSeen = %v, %v", id, seen, err)
		}
		if err := s.MarkSeen(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	weird := reconcile.Target{Tenant: "scs", Pipeline: "periodic-*"}
	if _, ok, err := s.Cursor(ctx, weird); err != nil || ok {
		t.Fatalf("Cursor before SetCursor: ok=%v err=%v", ok, err)
	}
	if err := s.SetCursor(ctx, weird, 48213); err != nil {
		t.Fatal(err)
	}

	// A second store on the same bucket (a restarted process) sees it all.
	s2, err := reconcile.NewKVStore(ctx, js, "zuul-bridge-reconcile")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range idsToMark {
		if seen, err := s2.Seen(ctx, id); err != nil || !seen {
			t.Errorf("Seen(%q) after restart = %v, %v", id, seen, err)
		}
	}
	if idx, ok, err := s2.Cursor(ctx, weird); err != nil || !ok || idx != 48213 {
		t.Errorf("Cursor after restart = %d, %v, %v", idx, ok, err)
	}
	if _, ok, _ := s2.Cursor(ctx, daily); ok {
		t.Error("cursor of another target set")
	}

	kv, err := js.KeyValue(ctx, "zuul-bridge-reconcile")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != reconcile.KVMaxAge {
		t.Errorf("bucket TTL %v, want %v (bounded)", st.TTL(), reconcile.KVMaxAge)
	}
}

func TestRestartWithKVStoreSubmitsNothing(t *testing.T) {
	ctx := context.Background()
	js := jetStream(t)
	e := newEnv(t, zuulwebfake.Options{})
	e.add("SUCCESS", 3*time.Hour)
	e.add("FAILURE", 2*time.Hour)
	running := e.add("", time.Hour)

	var err error
	if e.store, err = reconcile.NewKVStore(ctx, js, "rec"); err != nil {
		t.Fatal(err)
	}
	if got := e.round(e.reconciler()); len(got) != 2 {
		t.Fatalf("first process submitted %v", ids(got))
	}
	// The MQTT path settled the running one's report before the database had it.
	if err := e.store.MarkSeen(ctx, running.UUID+"-FAILURE"); err != nil {
		t.Fatal(err)
	}
	e.fake.Update("scs", running.UUID, func(bs *zuulwebfake.Buildset) { finish(bs, "FAILURE") })

	// Restart: a new store on the same bucket and a new reconciler.
	if e.store, err = reconcile.NewKVStore(ctx, js, "rec"); err != nil {
		t.Fatal(err)
	}
	if got := e.round(e.reconciler()); len(got) != 0 {
		t.Fatalf("restarted process submitted %v", ids(got))
	}
	if cur, ok, _ := e.store.Cursor(ctx, daily); !ok || cur != running.ID {
		t.Errorf("cursor %d, %v; want %d", cur, ok, running.ID)
	}
}
