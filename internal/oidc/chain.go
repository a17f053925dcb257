package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
)

// Chain is the state of one refresh-token chain, shared by every replica through a
// ChainStore. Dex rotates the refresh token on every refresh and refuses the old one a
// few seconds later, so the current refresh token lives here, not in the mounted seed.
type Chain struct {
	// RefreshToken is the one refresh token that may be spent next.
	RefreshToken string `json:"refresh_token"`
	// SeedHash identifies the seed the chain started from; a different seed in the
	// Secret replaces the chain.
	SeedHash string `json:"seed_hash"`
	// IDToken is the newest id_token, shared so that a replica need not refresh while
	// another one's token is fresh.
	IDToken       string    `json:"id_token,omitempty"`
	IDTokenExpiry time.Time `json:"id_token_expiry"`
	IDTokenIssued time.Time `json:"id_token_issued"`
	// RefreshingBy and RefreshingUntil are the lease of the replica that is spending
	// RefreshToken right now; the others wait for its result instead of spending the
	// same token.
	RefreshingBy    string    `json:"refreshing_by,omitempty"`
	RefreshingUntil time.Time `json:"refreshing_until"`
	// Refreshes counts the refreshes since the seed, for logs.
	Refreshes uint64 `json:"refreshes"`
}

// ChainStore keeps the chain with compare-and-set: KVStore keeps it in a NATS JetStream
// key-value bucket (kvstore.TokenChain), shared by the replicas and kept across restarts
// (Dex refuses the seed once it was refreshed, so a chain kept only in a process would
// need a new seed after every restart).
type ChainStore interface {
	// Load returns the chain and its revision, or ErrNoChain.
	Load(ctx context.Context) (Chain, uint64, error)
	// Save stores c if the latest revision is rev (0: if there is none yet) and returns
	// the new revision, or ErrConflict when another writer was first.
	Save(ctx context.Context, c Chain, rev uint64) (uint64, error)
}

// The outcomes of a ChainStore that the source acts on; any other error means the
// store is unreachable.
var (
	ErrNoChain  = errors.New("oidc: no refresh-token chain stored")
	ErrConflict = errors.New("oidc: refresh-token chain changed meanwhile")
)

// SeedHash is what Chain.SeedHash holds for a seed: a hash, so that the store does not
// keep a second copy of the seed.
func SeedHash(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:16])
}

// ValueStore is a compare-and-set store of one opaque value: kvstore.TokenChain.
type ValueStore interface {
	// Load returns the value and its revision, or kvstore.ErrNoKey.
	Load(ctx context.Context) ([]byte, uint64, error)
	// Save stores value if the latest revision is rev (0: none yet), else
	// kvstore.ErrRevisionMismatch.
	Save(ctx context.Context, value []byte, rev uint64) (uint64, error)
}

// KVStore is the ChainStore over a ValueStore: the chain as one JSON value.
func KVStore(v ValueStore) ChainStore { return jsonStore{v} }

type jsonStore struct{ v ValueStore }

func (s jsonStore) Load(ctx context.Context) (Chain, uint64, error) {
	b, rev, err := s.v.Load(ctx)
	if errors.Is(err, kvstore.ErrNoKey) {
		return Chain{}, 0, ErrNoChain
	}
	if err != nil {
		return Chain{}, 0, err
	}
	var c Chain
	if err := json.Unmarshal(b, &c); err != nil {
		// Not ours or damaged: treated as absent, the next Save replaces it.
		return Chain{}, rev, ErrNoChain
	}
	return c, rev, nil
}

func (s jsonStore) Save(ctx context.Context, c Chain, rev uint64) (uint64, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	nrev, err := s.v.Save(ctx, b, rev)
	if errors.Is(err, kvstore.ErrRevisionMismatch) {
		return 0, ErrConflict
	}
	return nrev, err
}
