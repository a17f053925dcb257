package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

func TestRestartWithKVStoreSubmitsNothing(t *testing.T) {
	ctx := context.Background()
	js := natstest.JetStream(t)
	e := newEnv(t, zuulwebfake.Options{})
	e.add("SUCCESS", 3*time.Hour)
	e.add("FAILURE", 2*time.Hour)
	running := e.add("", time.Hour)

	var err error
	if e.store, err = kvstore.NewSeen(ctx, js, "rec"); err != nil {
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
	if e.store, err = kvstore.NewSeen(ctx, js, "rec"); err != nil {
		t.Fatal(err)
	}
	if got := e.round(e.reconciler()); len(got) != 0 {
		t.Fatalf("restarted process submitted %v", ids(got))
	}
	if cur, ok, _ := e.store.Cursor(ctx, daily.Tenant, daily.Pipeline); !ok || cur != running.ID {
		t.Errorf("cursor %d, %v; want %d", cur, ok, running.ID)
	}
}
