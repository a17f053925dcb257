package kvstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SeenMaxAge bounds how long the key-value bucket keeps an entry (the bucket's TTL). Seen
// ids only matter while their buildsets are within reach of a round (the cursor and the
// Lookback window); a cursor untouched this long has its pipeline start over with the
// Lookback window.
const SeenMaxAge = 30 * 24 * time.Hour

// NewSeen is OpenSeen of bucket with the default options (one replica).
func NewSeen(ctx context.Context, js jetstream.JetStream, bucket string) (*Seen, error) {
	return OpenSeen(ctx, js, SeenOptions{Bucket: bucket})
}

// SeenOptions configure OpenSeen.
type SeenOptions struct {
	Bucket string
	// Replicas of the bucket's stream in a NATS cluster; <= 0 = 1. An existing bucket
	// with fewer is scaled up (see EnsureReplicas).
	Replicas int
	// ReplicaCheck reports a bucket NATS refused to scale up; nil: that is an error.
	ReplicaCheck *ReplicaCheck
	// Timeout bounds every operation (and the binding), so that a server that does not
	// answer, or a cluster electing a leader, is an error the caller retries; <= 0 = 5s.
	Timeout time.Duration
}

// NewSeen keeps what reconciliation applied, and its cursors, in a JetStream key-value
// bucket, created with SeenMaxAge as its TTL and one revision per key if it does not exist
// (an existing bucket is used as configured, but scaled up to Replicas). Keys are hashes
// ("seen.<sha256>", "cursor.<sha256>"), as Event IDs and pipeline names may hold characters
// a key may not; the values are the id and the cursor in clear, for inspection with
// `nats kv`. On a server that lacks JetStream this fails with ErrNoJetStream.
func OpenSeen(ctx context.Context, js jetstream.JetStream, o SeenOptions) (*Seen, error) {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	kv, err := bind(ctx, js, jetstream.KeyValueConfig{
		Bucket:      o.Bucket,
		Description: "zuul-bridge: reports applied and zuul-web cursors",
		History:     1,
		TTL:         SeenMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}, o.ReplicaCheck)
	if err != nil {
		return nil, err
	}
	return &Seen{kv: kv, timeout: o.Timeout}, nil
}

// Seen is the reconcile store over one bucket. Safe for concurrent use.
type Seen struct {
	kv      jetstream.KeyValue
	timeout time.Duration
}

func hashKey(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return prefix + "." + hex.EncodeToString(h.Sum(nil)[:20])
}

func (s *Seen) Seen(ctx context.Context, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.kv.Get(ctx, hashKey("seen", id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("reconcile: seen %s: %w", id, err)
}

func (s *Seen) MarkSeen(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.kv.Put(ctx, hashKey("seen", id), []byte(id)); err != nil {
		return fmt.Errorf("reconcile: mark seen %s: %w", id, err)
	}
	return nil
}

func (s *Seen) Cursor(ctx context.Context, tenant, pipeline string) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	e, err := s.kv.Get(ctx, hashKey("cursor", tenant, pipeline))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reconcile: cursor %s/%s: %w", tenant, pipeline, err)
	}
	idx, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("reconcile: cursor %s/%s: %q is not a number", tenant, pipeline, e.Value())
	}
	return idx, true, nil
}

func (s *Seen) SetCursor(ctx context.Context, tenant, pipeline string, idx int64) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.kv.Put(ctx, hashKey("cursor", tenant, pipeline), []byte(strconv.FormatInt(idx, 10))); err != nil {
		return fmt.Errorf("reconcile: set cursor %s/%s: %w", tenant, pipeline, err)
	}
	return nil
}
