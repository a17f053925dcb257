package kvstore_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

// Keys lists the keys that hold a value, not the deleted ones; an empty bucket lists none.
func TestCASKeys(t *testing.T) {
	srv := natstest.Start(t, true)
	ctx := t.Context()
	s, err := kvstore.NewCAS(ctx, natstest.Connect(t, srv.ClientURL()), kvstore.CASOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := s.Keys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("empty bucket: %q, %v", keys, err)
	}
	for _, k := range []string{"a1", "b2", "c3"} {
		if _, err := s.Create(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	_, rev, _ := s.Get(ctx, "b2")
	if err := s.Delete(ctx, "b2", rev); err != nil {
		t.Fatal(err)
	}
	keys, err := s.Keys(ctx)
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, []string{"a1", "c3"}) {
		t.Fatalf("keys: %q, %v; want a1, c3", keys, err)
	}
}

// A server that lacks JetStream is told apart from an unreachable one.
func TestCASWithoutJetStream(t *testing.T) {
	srv := natstest.Start(t, false)
	_, err := kvstore.NewCAS(t.Context(), natstest.Connect(t, srv.ClientURL()), kvstore.CASOptions{})
	if !errors.Is(err, kvstore.ErrNoJetStream) {
		t.Fatalf("NewCAS on a server lacking JetStream: %v, want ErrNoJetStream", err)
	}
}
