package oidc_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
)

// Two sources (two replicas) on one bucket, tokens expiring while both ask: no refresh
// token is ever presented twice.
func TestTokenChainTwoReplicas(t *testing.T) {
	ns := natstest.Start(t, true)
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: time.Second, ReuseWindow: time.Millisecond})
	seed := is.Seed()
	var srcs []*oidc.Source
	for _, owner := range []string{"pod-0", "pod-1"} {
		st := kvstore.NewTokenChain(natstest.Connect(t, ns.ClientURL()), kvstore.TokenChainOptions{Issuer: is.URL(), ClientID: is.ClientID()})
		s, err := oidc.New(oidc.Options{Issuer: is.URL(), Seed: func() (string, error) { return seed, nil }, Store: oidc.KVStore(st), Owner: owner, Log: zerolog.Nop()})
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

// KVStore keeps the chain in the bucket, where another store (a restarted replica) reads
// it; a server that lacks JetStream is an error that says so, never an empty chain, so that
// the source neither starts over from a spent seed nor keeps the chain where a restart
// loses it.
func TestKVStore(t *testing.T) {
	ctx := t.Context()
	chain := oidc.Chain{RefreshToken: "rt-1", SeedHash: "s"}

	js := natstest.Start(t, true)
	st := oidc.KVStore(kvstore.NewTokenChain(natstest.Connect(t, js.ClientURL()), kvstore.TokenChainOptions{}))
	if _, err := st.Save(ctx, chain, 0); err != nil {
		t.Fatal(err)
	}
	other := oidc.KVStore(kvstore.NewTokenChain(natstest.Connect(t, js.ClientURL()), kvstore.TokenChainOptions{}))
	if got, _, err := other.Load(ctx); err != nil || got.RefreshToken != "rt-1" {
		t.Fatalf("another store read %+v, %v; want the saved chain from the bucket", got, err)
	}

	plain := natstest.Start(t, false)
	st = oidc.KVStore(kvstore.NewTokenChain(natstest.Connect(t, plain.ClientURL()), kvstore.TokenChainOptions{}))
	if _, _, err := st.Load(ctx); !errors.Is(err, kvstore.ErrNoJetStream) {
		t.Fatalf("on a server lacking JetStream: Load = %v, want kvstore.ErrNoJetStream", err)
	}
	if _, err := st.Save(ctx, chain, 0); !errors.Is(err, kvstore.ErrNoJetStream) {
		t.Fatalf("on a server lacking JetStream: Save = %v, want kvstore.ErrNoJetStream", err)
	}
}
