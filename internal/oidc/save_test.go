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
