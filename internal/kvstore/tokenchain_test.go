package kvstore_test

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
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
)

func conn(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestTokenChainCompareAndSet(t *testing.T) {
	ns := natstest.Start(t, true)
	s := kvstore.NewTokenChain(conn(t, ns.ClientURL()), kvstore.TokenChainOptions{Issuer: "https://idp", ClientID: "c"})
	ctx := t.Context()
	if _, _, err := s.Load(ctx); !errors.Is(err, oidc.ErrNoChain) {
		t.Fatalf("empty bucket: %v", err)
	}
	rev, err := s.Save(ctx, oidc.Chain{RefreshToken: "r1", SeedHash: "h"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, oidc.Chain{RefreshToken: "other"}, 0); !errors.Is(err, oidc.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	if _, err := s.Save(ctx, oidc.Chain{RefreshToken: "r2"}, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, oidc.Chain{RefreshToken: "stale"}, rev); !errors.Is(err, oidc.ErrConflict) {
		t.Fatalf("update with an old revision: %v, want ErrConflict", err)
	}
	// Another process sees the same chain.
	other := kvstore.NewTokenChain(conn(t, ns.ClientURL()), kvstore.TokenChainOptions{Issuer: "https://idp", ClientID: "c"})
	c, _, err := other.Load(ctx)
	if err != nil || c.RefreshToken != "r2" {
		t.Fatalf("other process: %q %v", c.RefreshToken, err)
	}
}

func TestTokenChainWithoutJetStream(t *testing.T) {
	ns := natstest.Start(t, false)
	s := kvstore.NewTokenChain(conn(t, ns.ClientURL()), kvstore.TokenChainOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Bind(ctx); err == nil || !kvstore.NoJetStream(err) {
		t.Fatalf("Bind without JetStream: %v, want an error NoJetStream recognises", err)
	}
}

// Two sources (two replicas) on one bucket, tokens expiring while both ask: no refresh
// token is ever presented twice.
func TestTokenChainTwoReplicas(t *testing.T) {
	ns := natstest.Start(t, true)
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: time.Second, ReuseWindow: time.Millisecond})
	seed := is.Seed()
	var srcs []*oidc.Source
	for _, owner := range []string{"pod-0", "pod-1"} {
		st := kvstore.NewTokenChain(conn(t, ns.ClientURL()), kvstore.TokenChainOptions{Issuer: is.URL(), ClientID: is.ClientID()})
		s, err := oidc.New(oidc.Options{Issuer: is.URL(), Seed: func() (string, error) { return seed, nil }, Store: st, Owner: owner, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for is.Counts().Refreshes < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for 4 refreshes: %+v", is.Counts())
		}
		var wg sync.WaitGroup
		for _, s := range srcs {
			wg.Go(func() {
				if _, err := s.BearerToken(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		time.Sleep(20 * time.Millisecond) // pace the callers; the token lifetime drives refreshes
	}
	if c := is.Counts(); c.Refused != 0 || c.Reuses != 0 {
		t.Fatalf("counts %+v: a refresh token was spent twice", c)
	}
}
