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

// KeyLister is a KeyStore that can list its keys. With it, Start finds every key with an
// open incident (or a hand-end flag) again at once; without it a key is found again by
// its next report.
type KeyLister interface {
	// Keys returns every key the store holds (none: an empty list, no error).
	Keys(ctx context.Context) ([]string, error)
}

// ErrKeyBusy is wrapped by the error of a report that cannot be applied now because
// another replica holds its incident key: it is opening the key's incident (a claim),
// posting an update to it, or changed the key's entry while this replica decided. The report is not applied and Send says retry; it can be applied as
// soon as the other replica is done or its hold has run out (ManagerOptions.ClaimTimeout),
// so a caller that recognises it (errors.Is) should ask again after a short, capped
// backoff (seconds), not the long one of a status page outage.
var ErrKeyBusy = errors.New("another replica is writing the incident of this key")

// ErrKeyResolving is ErrKeyBusy while the other replica resolves the key's incident
// (errors.Is(err, ErrKeyBusy) holds for it too).
var ErrKeyResolving = fmt.Errorf("%w (resolving it)", ErrKeyBusy)

// defaultClaimTimeout is how long a replica holds a key for one write to the status page
// (ManagerOptions.ClaimTimeout): the holder's requests end within half of it, 15 s (holdCtx),
// more than the status page client's 10 s request timeout; the other half covers a request
// the server finishes after its client gave up, and clock differences between replicas.
const defaultClaimTimeout = 30 * time.Second

// legacyClaimTimeout is the hold of an entry without Until, written by a bridge before
// holds carried their deadline: those replicas bounded their writes only by this.
const legacyClaimTimeout = 2 * time.Minute

// entry is the value stored per key: the bridge's knowledge of the key's incident, the
// truth for "this incident is ours" (the texts on the status page carry no marker).
// Incident "" = claimed: Owner is opening it (Opening says what it sends). An entry naming
// an ended incident is kept only while that incident was ended by a person (the shared
// "do not reopen" flag, lifted by a success).
type entry struct {
	Incident string    `json:"incident"`
	Owner    string    `json:"owner"`
	Since    time.Time `json:"since"`
	// Route is the route of the key (for Start, which finds keys by listing the store).
	Route string `json:"route,omitempty"`
	// Runs is the number of failing reports in the incident, 1 = the opening one.
	Runs int `json:"runs,omitempty"`
	// Began and LastFailure: the incident's start and its latest failing report.
	Began       time.Time `json:"began,omitzero"`
	LastFailure time.Time `json:"lastFailure,omitzero"`
	// Applied: the latest reports applied to the incident (report hashes and time tokens).
	Applied []string `json:"applied,omitempty"`
	// Opening: with a claim, the incident its owner creates, to find it again when the
	// owner stopped between the create and writing its id.
	Opening *fingerprint `json:"opening,omitempty"`
	// Closing: Owner is resolving the incident (fence); the others wait like for a claim.
	// A Closing entry naming an ended incident: the bridge ended it.
	Closing bool `json:"closing,omitempty"`
	// Updating: Owner is posting this update (written before the POST, cleared by the
	// entry written after it). Whoever reads an entry with it looks on the page whether
	// it landed before posting anything to the incident (replicas.go, settlePending).
	Updating *pendingUpdate `json:"updating,omitempty"`
	// Until: with a claim, Closing or Updating, the end of Owner's hold: nothing Owner sends under
	// it can reach the status page later, so from then on another replica that looked at
	// the page and did not find Owner's write may take over. Zero (older entries): Since
	// plus legacyClaimTimeout.
	Until time.Time `json:"until,omitzero"`
}

// pendingUpdate is an incident update being posted: found on the page by its display
// name and its createdAt (to the second), as findUpdate does.
type pendingUpdate struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
	// Report is the hash of the report it applies: applied once the update is found.
	Report string `json:"report,omitempty"`
}

// until is the end of the hold of a claim, a Closing or an Updating entry.
func (e entry) until() time.Time {
	if !e.Until.IsZero() {
		return e.Until
	}
	return e.Since.Add(legacyClaimTimeout)
}

// appliedShared bounds the reports an entry remembers; redeliveries come within minutes.
const appliedShared = 32

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
