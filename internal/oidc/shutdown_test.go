package oidc_test

import (
	"context"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
)

// A SIGTERM during a refresh (issue 24.2): the caller's (serve) context is cancelled
// after the issuer rotated the refresh token, while its answer is on the way. The refresh
// and the saving of its successor finish all the same, the lease is given back, and the
// next replica, long after the issuer's reuse window, continues the chain.
func TestShutdownDuringRefreshKeepsChain(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := newRig(t, oidcfake.Options{IDTokenTTL: 2 * time.Second, Answer: func(n int) bool {
		if n == 1 {
			cancel()                          // the signal arrives while the answer is on its way
			time.Sleep(50 * time.Millisecond) // and is seen before the answer arrives
		}
		return false
	}})
	_, _ = r.source(t, "pod-0", nil).BearerToken(ctx) // whether it returns the token does not matter
	if chain, _, err := r.store.Load(t.Context()); err != nil || chain.RefreshingBy != "" {
		t.Errorf("after the cancelled refresh: %v, lease held by %q", err, chain.RefreshingBy)
	}
	r.clock.Add(31 * time.Second) // the replacement starts: past the id_token, the reuse window and any lease
	next := r.source(t, "pod-1", nil)
	token(t, next)
	r.clock.Add(3 * time.Second)
	token(t, next)
	if c := r.is.Counts(); c.Refused != 0 || c.Reuses != 0 || c.Refreshes != 3 {
		t.Fatalf("counts %+v: want the chain continued from the successor the cancelled refresh got", c)
	}
	noTokens(t, r)
}

// An answer lost on the way (connection closed after the issuer rotated the refresh
// token) is asked for again at once, within the issuer's reuse window, which answers with
// the same successor.
func TestLostAnswerAskedAgain(t *testing.T) {
	r := newRig(t, oidcfake.Options{Answer: func(n int) bool { return n == 1 }})
	ob := &obs{}
	s := r.source(t, "pod-0", ob)
	token(t, s)
	if c := r.is.Counts(); c.Refreshes != 1 || c.Reuses != 1 || c.Refused != 0 {
		t.Fatalf("counts %+v: want the lost answer asked for again within the window", c)
	}
	if ob.failed != 0 || ob.refreshed != 1 {
		t.Errorf("observer %+v", ob)
	}
	r.clock.Add(3 * time.Second)
	token(t, r.source(t, "pod-1", nil))
	if c := r.is.Counts(); c.Refused != 0 || c.Refreshes != 2 {
		t.Fatalf("counts %+v: the successor was not stored", c)
	}
	noTokens(t, r)
}

// A replica that dies after the issuer rotated the refresh token and before the answer
// arrived: its lease is shorter than the issuer's reuse window, so a replica waiting for
// the result takes over in time to be answered with the same successor.
func TestDeadHolderTakenOverWithinReuseWindow(t *testing.T) {
	arrived, hold := make(chan struct{}), make(chan struct{})
	r := newRig(t, oidcfake.Options{IDTokenTTL: time.Hour, Answer: func(n int) bool {
		if n == 1 {
			close(arrived)
			<-hold
			return true // the holder is gone: its answer goes nowhere
		}
		return false
	}})
	deadCtx, kill := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _, _ = r.source(t, "pod-0", nil).BearerToken(deadCtx) }()
	defer func() { close(hold); kill(); <-done }()
	<-arrived

	got := make(chan error, 1)
	go func() { _, err := r.source(t, "pod-1", nil).BearerToken(t.Context()); got <- err }()
	for waited := time.Duration(0); ; waited += 25 * time.Millisecond {
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("the replica that took over: %v (counts %+v)", err, r.is.Counts())
			}
			if c := r.is.Counts(); c.Refreshes != 1 || c.Reuses != 1 || c.Refused != 0 {
				t.Fatalf("counts %+v: want the dead holder's successor handed out again", c)
			}
			noTokens(t, r)
			return
		default:
		}
		if waited > time.Minute {
			t.Fatal("no token after a minute on the clock")
		}
		r.clock.Add(25 * time.Millisecond)
		time.Sleep(10 * time.Millisecond)
	}
}
