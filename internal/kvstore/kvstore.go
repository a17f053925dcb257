// Package kvstore holds the bridge's state that replicas share, in NATS JetStream
// key-value buckets: CAS, the compare-and-set store of incident keys (every write names
// the revision it expects, JetStream's expected-last-sequence per subject), and Seen, what
// zuul-web reconciliation applied and how far it read. It knows nothing of incidents or
// reconciliation: the packages that use a store declare the interface they need.
package kvstore

import "errors"

// The outcomes of a CAS write that its callers act on.
var (
	ErrNoKey            = errors.New("key store: no such key")
	ErrKeyExists        = errors.New("key store: key exists")
	ErrRevisionMismatch = errors.New("key store: revision mismatch")
)
