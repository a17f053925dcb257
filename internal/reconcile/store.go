package reconcile

import (
	"context"
	"sync"
	"time"
)

// Target is one tenant and pipeline to reconcile. Pipeline may use zuul-web's `*`
// wildcard (10.1+); the cursor is kept per Target as written.
type Target struct{ Tenant, Pipeline string }

func (t Target) String() string { return t.Tenant + "/" + t.Pipeline }

// Store is what was reconciled; a persistent Store makes a restart republish nothing.
// Implementations are safe for concurrent use: the MQTT path calls MarkSeen while a round
// runs.
type Store interface {
	// Seen reports whether an Event.ID was applied before, over MQTT or REST.
	Seen(ctx context.Context, id string) (bool, error)
	// MarkSeen records that an Event.ID was applied (settled by the sinks).
	MarkSeen(ctx context.Context, id string) error
	// Cursor is the highest buildset id (_id) up to which everything of the target was
	// handled; ok is false before the first round that handled something (first start).
	Cursor(ctx context.Context, tenant, pipeline string) (idx int64, ok bool, err error)
	// SetCursor records a new cursor for the target.
	SetCursor(ctx context.Context, tenant, pipeline string, idx int64) error
}

// NewMemoryStore returns a Store that lives as long as the process: without JetStream a
// restart starts over with the Lookback window, and re-applies what it finds there. It
// forgets an id DefaultLookback after it was marked; NewMemoryStoreFor sets that age.
func NewMemoryStore() Store { return NewMemoryStoreFor(DefaultLookback, time.Now) }

// NewMemoryStoreFor returns a memory Store that forgets ids marked longer than keep ago
// (the reconciler never asks about buildsets older than its lookback, so the set stays
// bounded by the reports of one lookback window).
func NewMemoryStoreFor(keep time.Duration, now func() time.Time) Store {
	if keep <= 0 {
		keep = DefaultLookback
	}
	if now == nil {
		now = time.Now
	}
	return &memoryStore{seen: map[string]time.Time{}, cursors: map[Target]int64{}, keep: keep, now: now}
}

type memoryStore struct {
	mu      sync.Mutex
	seen    map[string]time.Time // id -> when it was marked
	cursors map[Target]int64
	keep    time.Duration
	now     func() time.Time
	pruned  time.Time // last prune
}

func (m *memoryStore) Seen(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.seen[id]
	return ok, nil
}

func (m *memoryStore) MarkSeen(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.seen[id] = now
	if now.Sub(m.pruned) >= m.keep/16 { // amortised: a prune per sixteenth of the age
		m.pruned = now
		for k, at := range m.seen {
			if now.Sub(at) > m.keep {
				delete(m.seen, k)
			}
		}
	}
	return nil
}

// size is the number of ids held (for tests).
func (m *memoryStore) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

func (m *memoryStore) Cursor(_ context.Context, tenant, pipeline string) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	idx, ok := m.cursors[Target{tenant, pipeline}]
	return idx, ok, nil
}

func (m *memoryStore) SetCursor(_ context.Context, tenant, pipeline string, idx int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursors[Target{tenant, pipeline}] = idx
	return nil
}
