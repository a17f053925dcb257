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

// KVStoreOrMemory keeps the chain in the bucket when the server has JetStream, in memory
// when it has none (saying so once), and passes on any other error, so that a server not
// reachable yet is tried again rather than given up for memory.
func TestKVStoreOrMemory(t *testing.T) {
	ctx := t.Context()
	chain := oidc.Chain{RefreshToken: "rt-1", SeedHash: "s"}

	js := natstest.Start(t, true)
	var told int
	st := oidc.KVStoreOrMemory(kvstore.NewTokenChain(natstest.Connect(t, js.ClientURL()), kvstore.TokenChainOptions{}), func() { told++ })
	if _, err := st.Save(ctx, chain, 0); err != nil {
		t.Fatal(err)
	}
	other := oidc.KVStore(kvstore.NewTokenChain(natstest.Connect(t, js.ClientURL()), kvstore.TokenChainOptions{}))
	if got, _, err := other.Load(ctx); err != nil || got.RefreshToken != "rt-1" || told != 0 {
		t.Fatalf("with JetStream: another store read %+v, %v (told %d); want the saved chain from the bucket", got, err, told)
	}

	plain := natstest.Start(t, false)
	st = oidc.KVStoreOrMemory(kvstore.NewTokenChain(natstest.Connect(t, plain.ClientURL()), kvstore.TokenChainOptions{}), func() { told++ })
	if _, _, err := st.Load(ctx); !errors.Is(err, oidc.ErrNoChain) {
		t.Fatalf("without JetStream, first Load: %v, want ErrNoChain from memory", err)
	}
	if _, err := st.Save(ctx, chain, 0); err != nil {
		t.Fatal(err)
	}
	if got, _, err := st.Load(ctx); err != nil || got.RefreshToken != "rt-1" || told != 1 {
		t.Fatalf("without JetStream: read %+v, %v, told %d times; want the chain from memory, told once", got, err, told)
	}

	gone := natstest.Start(t, true)
	nc := natstest.Connect(t, gone.ClientURL())
	gone.Shutdown()
	told = 0
	st = oidc.KVStoreOrMemory(kvstore.NewTokenChain(nc, kvstore.TokenChainOptions{Timeout: time.Second}), func() { told++ })
	if _, _, err := st.Load(ctx); err == nil || errors.Is(err, oidc.ErrNoChain) || told != 0 {
		t.Fatalf("server down: %v (told %d), want its error and no fall-back to memory", err, told)
	}
}
