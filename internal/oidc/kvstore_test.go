package oidc_test

import (
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
