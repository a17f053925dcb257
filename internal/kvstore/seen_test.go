package kvstore_test

import (
	"context"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

func TestSeen(t *testing.T) {
	ctx := context.Background()
	js := natstest.JetStream(t)
	s, err := kvstore.NewSeen(ctx, js, "zuul-bridge-reconcile")
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
	if _, ok, err := s.Cursor(ctx, "scs", "periodic-*"); err != nil || ok {
		t.Fatalf("Cursor before SetCursor: ok=%v err=%v", ok, err)
	}
	if err := s.SetCursor(ctx, "scs", "periodic-*", 48213); err != nil {
		t.Fatal(err)
	}

	// A second store on the same bucket (a restarted process) sees it all.
	s2, err := kvstore.NewSeen(ctx, js, "zuul-bridge-reconcile")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range idsToMark {
		if seen, err := s2.Seen(ctx, id); err != nil || !seen {
			t.Errorf("Seen(%q) after restart = %v, %v", id, seen, err)
		}
	}
	if idx, ok, err := s2.Cursor(ctx, "scs", "periodic-*"); err != nil || !ok || idx != 48213 {
		t.Errorf("Cursor after restart = %d, %v, %v", idx, ok, err)
	}
	if _, ok, _ := s2.Cursor(ctx, "scs", "periodic-daily"); ok {
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
	if st.TTL() != kvstore.SeenMaxAge {
		t.Errorf("bucket TTL %v, want %v (bounded)", st.TTL(), kvstore.SeenMaxAge)
	}
}
