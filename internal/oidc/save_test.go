package oidc_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc"
	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
)

// failingStore fails the next fail saves of a refreshed chain (the successor of a spent
// refresh token) as an unreachable store does.
type failingStore struct {
	oidc.ChainStore
	mu   sync.Mutex
	fail int
}

func (f *failingStore) Save(ctx context.Context, c oidc.Chain, rev uint64) (uint64, error) {
	f.mu.Lock()
	failing := f.fail > 0 && c.Refreshes > 0 && c.RefreshingBy == ""
	if failing {
		f.fail--
	}
	f.mu.Unlock()
	if failing {
		return 0, errors.New("store unreachable (test)")
	}
	return f.ChainStore.Save(ctx, c, rev)
}

// A failed save of the rotated refresh token (issue 27.6) is kept and saved again before
// anything else: after the id_token expired, a restarted source refreshes with the
// successor, and the issuer never sees a spent refresh token.
func TestFailedSaveIsSavedAgain(t *testing.T) {
	r := newRig(t, oidcfake.Options{IDTokenTTL: 2 * time.Second})
	store := &failingStore{ChainStore: r.store, fail: 1}
	s := r.sourceOn(t, store, "pod-0", nil)
	_, _ = s.BearerToken(t.Context()) // the successor is not stored: an error, or the id_token
	token(t, s)                       // the store answers again
	if c := r.is.Counts(); c.Refreshes != 1 {
		t.Fatalf("counts %+v: want the one refresh", c)
	}
	r.clock.Add(5 * time.Second) // the id_token expired, the reuse window passed
	token(t, r.source(t, "pod-0", nil))
	if c := r.is.Counts(); c.Refreshes != 2 || c.Refused != 0 || c.Reuses != 0 {
		t.Fatalf("counts %+v: the restarted source did not continue from the successor", c)
	}
	noTokens(t, r)
}

// A replica whose lease ran out while the issuer's answer was on its way (issue 24.4d):
// another replica took over, presented the refresh token after the reuse window and was
// refused, and gave the lease back. The successor the first replica then receives is the
// only valid refresh token there is: it is stored despite the conflict, and the chain goes on.
func TestSlowHolderKeepsItsSuccessor(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	r := newRig(t, oidcfake.Options{IDTokenTTL: 10 * time.Second, Answer: func(n int) bool {
		if n == 1 {
			close(arrived)
			<-release
		}
		return false
	}})
	slow, other := r.source(t, "pod-0", nil), r.source(t, "pod-1", nil)
	got := make(chan error, 1)
	go func() { _, err := slow.BearerToken(t.Context()); got <- err }()
	<-arrived
	r.clock.Add(4 * time.Second) // past the lease and the issuer's reuse window
	var re *oidc.RefreshError
	if _, err := other.BearerToken(t.Context()); !errors.As(err, &re) || !re.Refused {
		t.Fatalf("the replica that took over: %v, want refused (counts %+v)", err, r.is.Counts())
	}
	close(release)
	if err := <-got; err != nil {
		t.Fatalf("the slow replica: %v", err)
	}
	r.clock.Add(20 * time.Second) // both id_tokens expired
	token(t, other)
	if c := r.is.Counts(); c.Refused != 1 || c.Refreshes != 2 {
		t.Fatalf("counts %+v: the slow replica's successor was not kept", c)
	}
	noTokens(t, r)
}

// The same, with the refusal arriving after the slow replica stored its successor: the
// replica that took over sees the chain moved on and uses it instead of reporting a
// broken chain.
func TestTakeoverRefusedUsesStoredSuccessor(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var r *rig
	r = newRig(t, oidcfake.Options{IDTokenTTL: 20 * time.Second, Answer: func(n int) bool {
		switch n {
		case 1:
			close(arrived)
			<-release
		case 2: // the refusal of the replica that took over waits for the successor to be stored
			close(release)
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if c, _, err := r.store.Load(context.Background()); err == nil && c.Refreshes == 1 && c.RefreshingBy == "" {
					break
				}
			}
		}
		return false
	}})
	slow, ob := r.source(t, "pod-0", nil), &obs{}
	other := r.source(t, "pod-1", ob)
	got := make(chan error, 1)
	go func() { _, err := slow.BearerToken(t.Context()); got <- err }()
	<-arrived
	r.clock.Add(4 * time.Second)
	tok := token(t, other)
	if err := <-got; err != nil {
		t.Fatalf("the slow replica: %v", err)
	}
	if c, _, _ := r.store.Load(t.Context()); c.IDToken != tok {
		t.Error("the replica that took over did not use the stored id_token")
	}
	if ob.failed != 0 {
		t.Errorf("observer heard %d failures, want none", ob.failed)
	}
	if c := r.is.Counts(); c.Refused != 1 || c.Refreshes != 1 {
		t.Fatalf("counts %+v", c)
	}
	noTokens(t, r)
}
