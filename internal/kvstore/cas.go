package kvstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CASOptions configure NewCAS.
type CASOptions struct {
	// Bucket is the key-value bucket; one per bridge deployment (BridgeID).
	// "" = "zuul-bridge-incidents".
	Bucket string
	// MaxAge drops entries not written for this long (an incident updated by none of
	// its reports for that long, or a forgotten hand-end flag). <= 0 = 30 days, as long
	// as the status page's recovery window.
	MaxAge time.Duration
	// Replicas of the bucket's stream in a NATS cluster; <= 0 = 1. An existing bucket
	// with fewer is scaled up (see EnsureReplicas).
	Replicas int
	// ReplicaCheck reports a bucket NATS refused to scale up; nil: that is an error.
	ReplicaCheck *ReplicaCheck
	// Timeout bounds every operation, so that an unreachable server turns into a
	// retryable error before the delivery's own deadline. <= 0 = 5s.
	Timeout time.Duration
}

// DefaultCASBucket is the bucket used when CASOptions.Bucket is empty.
const DefaultCASBucket = "zuul-bridge-incidents"

const (
	defaultMaxAge  = 30 * 24 * time.Hour
	defaultTimeout = 5 * time.Second
)

// CAS is a compare-and-set store over one bucket: every write names the revision it
// expects. Safe for concurrent use.
type CAS struct {
	kv      jetstream.KeyValue
	timeout time.Duration
}

// NewCAS binds the bucket, creating it (history 1, file storage, MaxAge, Replicas) if it is
// missing; an existing bucket is used as it is configured, but scaled up to Replicas. An
// unreachable server is an error, a server that lacks JetStream is ErrNoJetStream.
func NewCAS(ctx context.Context, nc *nats.Conn, o CASOptions) (*CAS, error) {
	if o.Bucket == "" {
		o.Bucket = DefaultCASBucket
	}
	if o.MaxAge <= 0 {
		o.MaxAge = defaultMaxAge
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("kvstore: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	kv, err := bind(ctx, js, jetstream.KeyValueConfig{
		Bucket:      o.Bucket,
		Description: "zuul-bridge: open status page incident per key",
		History:     1,
		TTL:         o.MaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}, o.ReplicaCheck)
	if err != nil {
		return nil, err
	}
	return &CAS{kv: kv, timeout: o.Timeout}, nil
}

// Get returns ErrNoKey for a missing or deleted key.
func (s *CAS) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNoKey
	}
	if err != nil {
		return nil, 0, fmt.Errorf("kvstore: get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Create returns ErrKeyExists when the key holds a value.
func (s *CAS) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rev, err := s.kv.Create(ctx, key, value)
	// Create on a deleted key is an update of the delete marker; losing that race
	// surfaces as a revision mismatch, which means the same: someone else wrote first.
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, ErrKeyExists
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: create %s: %w", key, err)
	}
	return rev, nil
}

// Update returns ErrRevisionMismatch when rev is not the latest revision.
func (s *CAS) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if rev == 0 {
		return 0, fmt.Errorf("kvstore: update %s: revision 0", key) // would mean "create"
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	nrev, err := s.kv.Update(ctx, key, value, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, ErrRevisionMismatch
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: update %s: %w", key, err)
	}
	return nrev, nil
}

// Delete returns ErrRevisionMismatch when rev is not the latest revision.
func (s *CAS) Delete(ctx context.Context, key string, rev uint64) error {
	if rev == 0 {
		return fmt.Errorf("kvstore: delete %s: revision 0", key) // would be unconditional
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrRevisionMismatch
	}
	if err != nil {
		return fmt.Errorf("kvstore: delete %s: %w", key, err)
	}
	return nil
}

// Keys lists every key the bucket holds (deleted ones not); an empty bucket gives none.
func (s *CAS) Keys(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	l, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("kvstore: list keys: %w", err)
	}
	defer l.Stop()
	var keys []string
	seen := map[string]bool{}
	for {
		select {
		case k, ok := <-l.Keys():
			if !ok {
				return keys, nil
			}
			if !seen[k] { // a key written during the listing may come twice
				seen[k] = true
				keys = append(keys, k)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("kvstore: list keys: %w", context.Cause(ctx))
		}
	}
}
