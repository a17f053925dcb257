package kvstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

// The compare-and-set contract the incident manager relies on, against a real server.
func TestCompareAndSet(t *testing.T) {
	srv := natstest.Start(t, true)
	nc := natstest.Connect(t, srv.ClientURL())
	ctx := t.Context()
	s, err := kvstore.NewCAS(ctx, nc, kvstore.CASOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const key = "0123456789abcdef0123456789abcdef" // a key hash
	if _, _, err := s.Get(ctx, key); !errors.Is(err, kvstore.ErrNoKey) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	r1, err := s.Create(ctx, key, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, key, []byte("b")); !errors.Is(err, kvstore.ErrKeyExists) {
		t.Fatalf("second Create: %v", err)
	}
	r2, err := s.Update(ctx, key, []byte("c"), r1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, key, []byte("d"), r1); !errors.Is(err, kvstore.ErrRevisionMismatch) {
		t.Fatalf("stale Update: %v", err)
	}
	if v, rev, err := s.Get(ctx, key); err != nil || string(v) != "c" || rev != r2 {
		t.Fatalf("Get = %q %d %v, want c %d", v, rev, err, r2)
	}
	if err := s.Delete(ctx, key, r1); !errors.Is(err, kvstore.ErrRevisionMismatch) {
		t.Fatalf("stale Delete: %v", err)
	}
	if err := s.Delete(ctx, key, r2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, key); !errors.Is(err, kvstore.ErrNoKey) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, err := s.Create(ctx, key, []byte("e")); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
}

// The bucket is created once, with history 1 and the max age; a second replica binds it.
func TestBucketCreated(t *testing.T) {
	srv := natstest.Start(t, true)
	nc := natstest.Connect(t, srv.ClientURL())
	ctx := t.Context()
	if _, err := kvstore.NewCAS(ctx, nc, kvstore.CASOptions{Bucket: "b1", MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := kvstore.NewCAS(ctx, nc, kvstore.CASOptions{Bucket: "b1", MaxAge: 2 * time.Hour}); err != nil {
		t.Fatalf("second replica: %v", err)
	}
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 1 || st.TTL() != time.Hour {
		t.Errorf("bucket: history %d ttl %v, want 1 and 1h (kept from the first)", st.History(), st.TTL())
	}
}

// A server that lacks JetStream fails New; a stopped server makes operations fail within
// the timeout (the manager turns that into a retryable error).
func TestUnavailable(t *testing.T) {
	plain := natstest.Start(t, false)
	if _, err := kvstore.NewCAS(t.Context(), natstest.Connect(t, plain.ClientURL()), kvstore.CASOptions{Timeout: time.Second}); err == nil {
		t.Error("New on a server lacking JetStream succeeded")
	}
	srv := natstest.Start(t, true)
	s, err := kvstore.NewCAS(t.Context(), natstest.Connect(t, srv.ClientURL()), kvstore.CASOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, _, err := s.Get(ctx, "k"); err == nil || errors.Is(err, kvstore.ErrNoKey) {
		t.Errorf("Get with the server down: %v", err)
	}
	if ctx.Err() != nil {
		t.Error("the store's own timeout did not apply")
	}
}
