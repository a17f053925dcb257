package kvstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

func TestTokenChainCompareAndSet(t *testing.T) {
	ns := natstest.Start(t, true)
	s := kvstore.NewTokenChain(natstest.Connect(t, ns.ClientURL()), kvstore.TokenChainOptions{Issuer: "https://idp", ClientID: "c"})
	ctx := t.Context()
	if _, _, err := s.Load(ctx); !errors.Is(err, kvstore.ErrNoKey) {
		t.Fatalf("empty bucket: %v", err)
	}
	rev, err := s.Save(ctx, []byte("r1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, []byte("other"), 0); !errors.Is(err, kvstore.ErrRevisionMismatch) {
		t.Fatalf("second create: %v, want ErrRevisionMismatch", err)
	}
	if _, err := s.Save(ctx, []byte("r2"), rev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, []byte("stale"), rev); !errors.Is(err, kvstore.ErrRevisionMismatch) {
		t.Fatalf("update with an old revision: %v, want ErrRevisionMismatch", err)
	}
	// Another process sees the same value.
	other := kvstore.NewTokenChain(natstest.Connect(t, ns.ClientURL()), kvstore.TokenChainOptions{Issuer: "https://idp", ClientID: "c"})
	b, _, err := other.Load(ctx)
	if err != nil || string(b) != "r2" {
		t.Fatalf("other process: %q %v", b, err)
	}
}

func TestTokenChainWithoutJetStream(t *testing.T) {
	ns := natstest.Start(t, false)
	s := kvstore.NewTokenChain(natstest.Connect(t, ns.ClientURL()), kvstore.TokenChainOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, _, err := s.Load(ctx); !errors.Is(err, kvstore.ErrNoJetStream) {
		t.Fatalf("Load on a server lacking JetStream: %v, want ErrNoJetStream", err)
	}
	if _, err := s.Save(ctx, []byte("x"), 0); !errors.Is(err, kvstore.ErrNoJetStream) {
		t.Fatalf("Save on a server lacking JetStream: %v, want ErrNoJetStream", err)
	}
}
