package kvstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultTokenChainBucket is the bucket of TokenChain when none is named.
const DefaultTokenChainBucket = "zuul-bridge-statuspage-auth"

// TokenChainOptions configure NewTokenChain.
type TokenChainOptions struct {
	Bucket string // "" = DefaultTokenChainBucket
	// Issuer and ClientID name the chain: one key per issuer and client, so that one
	// bucket can serve deployments that log in differently.
	Issuer, ClientID string
	Replicas         int           // of the bucket's stream; <= 0 = 1; an existing bucket is scaled up
	ReplicaCheck     *ReplicaCheck // reports a bucket NATS refused to scale up; nil: an error
	Timeout          time.Duration // per operation; <= 0 = 5s
}

// TokenChain keeps one value, the status page login's refresh-token chain, in a NATS
// JetStream key-value bucket, written with kv.Create/kv.Update and the revision last read,
// so two replicas never both advance it (oidc.KVStore gives it its meaning). The bucket is bound on first use (and created if
// missing), so that NATS need not be up when the bridge starts. Safe for concurrent use.
type TokenChain struct {
	nc  *nats.Conn
	o   TokenChainOptions
	key string

	mu  sync.Mutex
	cas *CAS // bound at the first use
}

// NewTokenChain returns the store; nothing is contacted yet.
func NewTokenChain(nc *nats.Conn, o TokenChainOptions) *TokenChain {
	if o.Bucket == "" {
		o.Bucket = DefaultTokenChainBucket
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	sum := sha256.Sum256([]byte(o.Issuer + "\x00" + o.ClientID))
	return &TokenChain{nc: nc, o: o, key: "chain-" + hex.EncodeToString(sum[:12])}
}

// store opens the bucket at the first use, creating it if it is missing. A server
// that lacks JetStream (where the chain cannot be kept) gives ErrNoJetStream, told apart from
// one not reachable yet.
func (s *TokenChain) store(ctx context.Context) (*CAS, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cas != nil {
		return s.cas, nil
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("kvstore: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	kv, err := bind(bctx, js, jetstream.KeyValueConfig{
		Bucket:      s.o.Bucket,
		Description: "zuul-bridge: the status page login's current refresh token (rotated on every refresh)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    s.o.Replicas,
	}, s.o.ReplicaCheck)
	if err != nil {
		return nil, err
	}
	s.cas = &CAS{kv: kv, timeout: s.o.Timeout}
	return s.cas, nil
}

// Load returns the value and its revision, or ErrNoKey.
func (s *TokenChain) Load(ctx context.Context) ([]byte, uint64, error) {
	cas, err := s.store(ctx)
	if err != nil {
		return nil, 0, err
	}
	return cas.Get(ctx, s.key)
}

// Save stores value if the latest revision is rev (0: if there is none yet) and returns
// the new revision, or ErrRevisionMismatch when another writer was first.
func (s *TokenChain) Save(ctx context.Context, value []byte, rev uint64) (uint64, error) {
	cas, err := s.store(ctx)
	if err != nil {
		return 0, err
	}
	if rev != 0 {
		return cas.Update(ctx, s.key, value, rev)
	}
	nrev, err := cas.Create(ctx, s.key, value)
	if errors.Is(err, ErrKeyExists) {
		return 0, ErrRevisionMismatch
	}
	return nrev, err
}
