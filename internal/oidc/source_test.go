package oidc_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
)

// clock is real time plus an offset the test moves forward, so that the fake issuer's
// real exp claims expire without the test waiting.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

type obs struct {
	mu        sync.Mutex
	refreshed int
	refused   int
	failed    int
}

func (o *obs) Refreshed() { o.mu.Lock(); o.refreshed++; o.mu.Unlock() }
func (o *obs) RefreshFailed(refused bool, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed++
	if refused {
		o.refused++
	}
}

type rig struct {
	is    *oidcfake.Issuer
	clock *clock
	store oidc.ChainStore
	seed  string
	log   *strings.Builder
	logMu *sync.Mutex
}

func newRig(t *testing.T, o oidcfake.Options) *rig {
	c := &clock{}
	o.Now = c.Now
	is := oidcfake.New(t, o)
	ns := natstest.Start(t, true)
	store := oidc.KVStore(kvstore.NewTokenChain(natstest.Connect(t, ns.ClientURL()), kvstore.TokenChainOptions{Issuer: is.URL(), ClientID: is.ClientID()}))
	return &rig{is: is, clock: c, store: store, seed: is.Seed(), log: &strings.Builder{}, logMu: &sync.Mutex{}}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (r *rig) source(t *testing.T, owner string, ob oidc.Observer) *oidc.Source {
	t.Helper()
	return r.sourceOn(t, r.store, owner, ob)
}

// sourceOn is source with another store (r.store wrapped).
func (r *rig) sourceOn(t *testing.T, store oidc.ChainStore, owner string, ob oidc.Observer) *oidc.Source {
	t.Helper()
	s, err := oidc.New(oidc.Options{
		Issuer: r.is.URL(), Seed: func() (string, error) { return r.seed, nil }, Store: store, Owner: owner,
		Observer: ob, Now: r.clock.Now, Log: zerolog.New(lockedWriter{r.logMu, r.log}).Level(zerolog.DebugLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func token(t *testing.T, s *oidc.Source) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := s.BearerToken(ctx)
	if err != nil {
		t.Fatalf("BearerToken: %v", err)
	}
	return tok
}

func TestRefreshAheadOfExpiryAndRotation(t *testing.T) {
	r := newRig(t, oidcfake.Options{IDTokenTTL: 4 * time.Second})
	ob := &obs{}
	s := r.source(t, "a", ob)
	first := token(t, s)
	if token(t, s) != first {
		t.Fatal("a fresh id_token was replaced")
	}
	if c := r.is.Counts(); c.Refreshes != 1 {
		t.Fatalf("counts %+v, want one refresh", c)
	}
	chain, _, err := r.store.Load(t.Context())
	if err != nil || chain.RefreshToken == r.seed || chain.IDToken != first || chain.SeedHash != oidc.SeedHash(r.seed) {
		t.Fatalf("stored chain not advanced: err=%v refreshes=%d", err, chain.Refreshes)
	}
	// Three quarters into the lifetime: inside the margin, so a new token, spending the
	// successor (the seed is not presented again).
	r.clock.Add(3500 * time.Millisecond)
	second := token(t, s)
	if second == first {
		t.Fatal("no refresh ahead of expiry")
	}
	if c := r.is.Counts(); c.Refreshes != 2 || c.Reuses != 0 || c.Refused != 0 {
		t.Fatalf("counts %+v, want two rotations, nothing reused", c)
	}
	if ob.refreshed != 2 {
		t.Errorf("observer heard %d refreshes", ob.refreshed)
	}
	out := r.log.String()
	for _, tok := range r.is.Issued() {
		if strings.Contains(out, tok) {
			t.Fatalf("a token is in the log:\n%s", out)
		}
	}
}

func TestRejectedRefreshesOnce(t *testing.T) {
	r := newRig(t, oidcfake.Options{IDTokenTTL: time.Hour})
	s := r.source(t, "a", nil)
	first := token(t, s)
	s.Rejected(first)
	second := token(t, s)
	if second == first {
		t.Fatal("a refused token was handed out again")
	}
	s.Rejected(second) // refused again at once: no second forced refresh
	if token(t, s) != second {
		t.Fatal("refreshed twice in a row for refusals")
	}
	s.Rejected("some-other-token") // not ours: ignored
	if c := r.is.Counts(); c.Refreshes != 2 {
		t.Fatalf("counts %+v, want 2 refreshes", c)
	}
	r.clock.Add(31 * time.Second)
	s.Rejected(second)
	if token(t, s) == second {
		t.Fatal("no refresh for a refusal 31 s later")
	}
}

// A process killed right after a refresh: its successor (same store, same owner, or
// another one) continues the chain; the issuer never sees a used token again.
func TestRestartContinuesChain(t *testing.T) {
	r := newRig(t, oidcfake.Options{IDTokenTTL: 2 * time.Second, ReuseWindow: time.Millisecond})
	token(t, r.source(t, "pod-0", nil))
	restarted := r.source(t, "pod-0", nil)
	a := token(t, restarted) // the stored id_token is still fresh: no refresh
	if c := r.is.Counts(); c.Refreshes != 1 {
		t.Fatalf("counts %+v: the restart refreshed although a fresh token was stored", c)
	}
	r.clock.Add(2 * time.Second)
	if b := token(t, restarted); b == a {
		t.Fatal("no refresh after expiry")
	}
	if c := r.is.Counts(); c.Refreshes != 2 || c.Refused != 0 {
		t.Fatalf("counts %+v, want the chain continued", c)
	}
}

// Two replicas on one chain, both asking for tokens while the tokens expire: every
// refresh token is spent exactly once.
func TestTwoReplicasOneChain(t *testing.T) {
	r := newRig(t, oidcfake.Options{IDTokenTTL: 2 * time.Second, ReuseWindow: time.Millisecond})
	srcs := []*oidc.Source{r.source(t, "pod-0", nil), r.source(t, "pod-1", nil)}
	for range 20 {
		var wg sync.WaitGroup
		for _, s := range srcs {
			for range 3 {
				wg.Go(func() {
					if _, err := s.BearerToken(t.Context()); err != nil {
						t.Error(err)
					}
				})
			}
		}
		wg.Wait()
		r.clock.Add(time.Second)
	}
	c := r.is.Counts()
	if c.Refused != 0 || c.Reuses != 0 {
		t.Fatalf("counts %+v: a refresh token was spent twice\n%s", c, r.log.String()[:min(4000, len(r.log.String()))])
	}
	if c.Refreshes < 10 {
		t.Fatalf("counts %+v: expected a refresh about every second token lifetime", c)
	}
}

// A new seed in the Secret replaces the stored chain, even a broken one.
func TestNewSeedReplacesChain(t *testing.T) {
	r := newRig(t, oidcfake.Options{IDTokenTTL: time.Hour})
	ob := &obs{}
	s := r.source(t, "a", ob)
	first := token(t, s)
	r.is.Revoke() // the operator's session is gone: the chain is dead
	s.Rejected(first)
	_, err := s.BearerToken(t.Context())
	var re *oidc.RefreshError
	if !errors.As(err, &re) || !re.Refused {
		t.Fatalf("revoked chain: %v, want a refused RefreshError", err)
	}
	if ob.refused != 1 {
		t.Errorf("observer heard %d refusals", ob.refused)
	}
	for _, tok := range append(r.is.Issued(), r.seed) {
		if strings.Contains(err.Error(), tok) {
			t.Fatal("the error holds a token")
		}
	}
	r.seed = r.is.Seed()
	if token(t, s) == first {
		t.Fatal("no new token after re-seeding")
	}
	chain, _, _ := r.store.Load(t.Context())
	if chain.SeedHash != oidc.SeedHash(r.seed) || chain.Refreshes != 1 {
		t.Fatalf("chain not restarted from the new seed (refreshes %d)", chain.Refreshes)
	}
	if !strings.Contains(r.log.String(), "put a new seed") {
		t.Errorf("the broken chain was not logged as such:\n%s", r.log.String())
	}
}

func TestNoSeedNoChain(t *testing.T) {
	r := newRig(t, oidcfake.Options{})
	r.seed = ""
	_, err := r.source(t, "a", nil).BearerToken(t.Context())
	if !errors.Is(err, oidc.ErrNoSeed) {
		t.Fatalf("%v, want ErrNoSeed", err)
	}
}

func TestIssuerDownIsNotRefused(t *testing.T) {
	r := newRig(t, oidcfake.Options{})
	r.is.SetDown(true)
	ob := &obs{}
	s := r.source(t, "a", ob)
	_, err := s.BearerToken(t.Context())
	var re *oidc.RefreshError
	if !errors.As(err, &re) || re.Refused {
		t.Fatalf("%v, want a RefreshError that is not a refusal", err)
	}
	r.is.SetDown(false)
	token(t, s) // the seed was not spent by the failed attempt
	if ob.refused != 0 || ob.failed != 1 {
		t.Errorf("observer: %+v", ob)
	}
}

// noTokens fails when a token the issuer handed out (or the seed) is in the log.
func noTokens(t *testing.T, r *rig) {
	t.Helper()
	r.logMu.Lock()
	out := r.log.String()
	r.logMu.Unlock()
	for _, tok := range append(r.is.Issued(), r.seed) {
		if strings.Contains(out, tok) {
			t.Fatalf("a token is in the log:\n%s", out)
		}
	}
}
