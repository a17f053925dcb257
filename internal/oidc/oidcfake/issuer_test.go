package oidcfake

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// Rotation with Dex's reuse window: a used refresh token is accepted again for a short
// time (answered with its successor, not rotated again), then refused.
func TestRefreshRotationAndReuseWindow(t *testing.T) {
	c := &clock{}
	is := New(t, Options{ReuseWindow: 3 * time.Second, Now: c.now})
	ctx := context.Background()
	p, err := gooidc.NewProvider(ctx, is.URL())
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: is.ClientID(), Endpoint: p.Endpoint()}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	refresh := func(rt string) (*oauth2.Token, error) {
		return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	seed := is.Seed()
	t1, err := refresh(seed)
	if err != nil {
		t.Fatal(err)
	}
	if t1.RefreshToken == seed || t1.Extra("id_token") == nil {
		t.Fatalf("no rotation or no id_token: %+v", t1)
	}
	verifier := p.Verifier(&gooidc.Config{ClientID: is.ClientID(), Now: c.now})
	idt, err := verifier.Verify(ctx, t1.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	if life := idt.Expiry.Sub(idt.IssuedAt); life != 2*time.Second {
		t.Errorf("id_token lifetime %s, want the default 2s", life)
	}

	c.add(time.Second) // within the window: the successor again
	t2, err := refresh(seed)
	if err != nil || t2.RefreshToken != t1.RefreshToken {
		t.Fatalf("reuse within the window: %v, successor changed: %v", err, t2 != nil && t2.RefreshToken != t1.RefreshToken)
	}
	c.add(3 * time.Second) // beyond the window: refused
	if _, err := refresh(seed); err == nil || !strings.Contains(err.Error(), "invalid_request") {
		t.Fatalf("reuse after the window: %v, want invalid_request", err)
	}
	if got := is.Counts(); got.Refreshes != 1 || got.Reuses != 1 || got.Refused != 1 || got.ReusedTooLate != 1 {
		t.Errorf("counts %+v", got)
	}
	if _, err := refresh(t1.RefreshToken); err != nil {
		t.Errorf("the successor: %v", err)
	}
	// A wrong client.
	bad := conf
	bad.ClientID = "other"
	if _, err := bad.TokenSource(ctx, &oauth2.Token{RefreshToken: is.Seed()}).Token(); err == nil {
		t.Error("another client id was accepted")
	}
	resp, err := http.Get(is.JWKSURL())
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("JWKS: %v", err)
	}
	resp.Body.Close()
}

// Options.Answer sees every refresh grant after the issuer decided it; dropping the
// answer leaves the rotation done, as an answer lost on the way does.
func TestAnswerHookDropsAnswer(t *testing.T) {
	var seen []int
	is := New(t, Options{Answer: func(n int) bool { seen = append(seen, n); return n == 1 }})
	ctx := context.Background()
	p, err := gooidc.NewProvider(ctx, is.URL())
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: is.ClientID(), Endpoint: p.Endpoint()}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	seed := is.Seed()
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: seed}).Token(); err == nil {
		t.Fatal("a dropped answer arrived")
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: seed}).Token(); err != nil {
		t.Fatalf("the lost answer's token again, within the window: %v", err)
	}
	if got := is.Counts(); got.Refreshes != 1 || got.Reuses != 1 || len(seen) != 2 {
		t.Errorf("counts %+v, hook saw %v", got, seen)
	}
}
