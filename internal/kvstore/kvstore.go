// Package kvstore holds the bridge's state that replicas share, in NATS JetStream
// key-value buckets: CAS, the compare-and-set store of incident keys (every write names
// the revision it expects, JetStream's expected-last-sequence per subject), and Seen, what
// zuul-web reconciliation applied and how far it read. It knows nothing of incidents or
// reconciliation: the packages that use a store declare the interface they need.
package kvstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The outcomes of a CAS write that its callers act on.
var (
	ErrNoKey            = errors.New("key store: no such key")
	ErrKeyExists        = errors.New("key store: key exists")
	ErrRevisionMismatch = errors.New("key store: revision mismatch")
)

// ErrNoJetStream: the NATS server answers but has no JetStream (for this account), so
// nothing can be kept: the feature that needs the store does not start, and says why.
var ErrNoJetStream = errors.New("kvstore: the NATS server has no JetStream")

// noJetStream reports whether err says that the NATS server or account has no JetStream
// (a connected server where nobody answers the JetStream API says the same).
func noJetStream(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrJetStreamNotEnabledForAccount)
}

// confirmNoJetStream tells a server that lacks JetStream from a cluster where nobody answered
// for the moment (a node lost, its streams electing a leader): "no responders" alone says
// either, so the server's JetStream account info decides.
func confirmNoJetStream(ctx context.Context, js jetstream.JetStream, err error) bool {
	if !errors.Is(err, nats.ErrNoResponders) {
		return true
	}
	_, aerr := js.AccountInfo(ctx)
	return aerr != nil && noJetStream(aerr)
}

// bind opens the bucket cfg names, creating it with cfg when it is missing. An existing
// bucket is used as it is configured, except that it is scaled up to cfg.Replicas when it
// has fewer (EnsureReplicas; check reports what NATS refuses). A server without
// JetStream gives ErrNoJetStream.
func bind(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, check *ReplicaCheck) (jetstream.KeyValue, error) {
	object := BucketObject(cfg.Bucket)
	created := false
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		created = err == nil
		if errors.Is(err, jetstream.ErrBucketExists) { // another replica was quicker
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
		if rerr := ReplicasError(err, object, cfg.Replicas, check); rerr != err {
			return nil, fmt.Errorf("kvstore: %w", rerr)
		}
	}
	switch {
	case noJetStream(err) && confirmNoJetStream(ctx, js, err):
		return nil, fmt.Errorf("%w (bucket %s: %v)", ErrNoJetStream, cfg.Bucket, err)
	case err != nil:
		return nil, fmt.Errorf("kvstore: bucket %s: %w", cfg.Bucket, err)
	}
	if created {
		check.ok(object)
		return kv, nil
	}
	stream, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", cfg.Bucket, err)
	}
	if err := EnsureReplicas(ctx, js, stream, object, cfg.Replicas, check); err != nil {
		return nil, fmt.Errorf("kvstore: %w", err)
	}
	return kv, nil
}
