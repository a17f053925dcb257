package reconcile

import "context"

// Target is one tenant and pipeline to reconcile. Pipeline may use zuul-web's `*`
// wildcard (10.1+); the cursor is kept per Target as written.
type Target struct{ Tenant, Pipeline string }

func (t Target) String() string { return t.Tenant + "/" + t.Pipeline }

// Store is what was reconciled, kept in JetStream (kvstore.Seen) so that a restart
// republishes nothing.
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
