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
//
// How the replicas keep one chain (Source):
//   - A replica takes the lease (RefreshingBy/Until, compare-and-set) before it spends
//     RefreshToken; the others wait for the chain it stores. The lease is shorter than
//     the issuer's reuse window (Options.LeaseTimeout): a replica that died after the
//     issuer rotated the token is taken over while the issuer still answers the old token
//     with the same successor.
//   - Once the token is being spent, the request and the saving of the successor run
//     under a context of their own (a shutdown does not cancel them); an answer lost on
//     the way is asked for again within the reuse window.
//   - The successor is never thrown away: when its compare-and-set fails, the chain is
//     read again; if it still holds the token that was spent (another replica took over
//     the lease, spent it too and got the same successor, or was refused), the successor
//     is stored over it; if it holds something else (that same successor, a new seed, a
//     chain refreshed further) the stored chain stays. A save that fails otherwise is
//     kept in the process and stored before anything else. Stored chains only ever move
//     forward, so a chain that still holds the spent token is never newer.
//   - A replica the issuer refused because another one spent the token first and stored
//     the successor uses the stored chain instead of reporting a broken one.
type Chain struct {
	// RefreshToken is the one refresh token that may be spent next.
	RefreshToken string `json:"refresh_token"`
	// ParentHash identifies (SeedHash of it) the refresh token that was spent to get
	// RefreshToken; "" for a chain that starts from its seed. It tells, in the logs, why
	// a replica's successor was not stored (see Source's keep).
	ParentHash string `json:"parent_hash,omitempty"`
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
