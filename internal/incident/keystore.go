package incident

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// KeyStore is a shared key-value store with revisions (compare-and-set), so that several
// replicas of the bridge never open two incidents for one key. The keys are incident key
// hashes (32 hex digits). Every write names the revision it expects; kvstore.CAS
// implements it over a NATS JetStream key-value bucket. An error other than
// kvstore.ErrNoKey, ErrKeyExists and ErrRevisionMismatch is treated as "store
// unreachable" and makes Send retryable.
type KeyStore interface {
	// Get returns the value and revision of key, or kvstore.ErrNoKey.
	Get(ctx context.Context, key string) (value []byte, rev uint64, err error)
	// Create stores value if key is absent (or deleted), else kvstore.ErrKeyExists.
	Create(ctx context.Context, key string, value []byte) (rev uint64, err error)
	// Update stores value if the latest revision of key is rev, else kvstore.ErrRevisionMismatch.
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Delete removes key if its latest revision is rev, else kvstore.ErrRevisionMismatch.
	Delete(ctx context.Context, key string, rev uint64) error
}

// errKeyBusy: another replica claimed the key to open its incident a moment ago; the
// report comes again (Send says retry) and then finds the incident and updates it.
var errKeyBusy = errors.New("another replica is opening the incident of this key")

// errKeyResolving: likewise while another replica resolves the key's incident.
var errKeyResolving = errors.New("another replica is resolving the incident of this key")

// defaultClaimTimeout is how long a claim without incident id is respected before
// another replica takes it over. It must exceed the longest POST /incidents attempt.
const defaultClaimTimeout = 2 * time.Minute

// entry is the value stored per key. Incident "" = claimed: Owner is opening it.
// An entry naming an ended incident is kept only while that incident was ended by a
// person (the shared "do not reopen" flag, lifted by a success).
type entry struct {
	Incident string    `json:"incident"`
	Owner    string    `json:"owner"`
	Since    time.Time `json:"since"`
	Runs     int       `json:"runs,omitempty"` // informational; the update list is the truth
	// Closing: Owner is resolving the incident (fence); the others wait like for a claim.
	Closing bool `json:"closing,omitempty"`
}

func (e entry) encode() []byte {
	b, _ := json.Marshal(e) // cannot fail: strings, a time and an int
	return b
}

func decodeEntry(b []byte) (entry, error) {
	var e entry
	if err := json.Unmarshal(b, &e); err != nil {
		return entry{}, fmt.Errorf("statuspage: key store: unreadable entry: %w", err)
	}
	return e, nil
}

// storeError makes an unexpected KeyStore error retryable: the store is a service that
// comes back (NATS restarting, a leader election).
func storeError(op string, err error) error {
	return &temporaryError{op: "key store " + op, err: err}
}
