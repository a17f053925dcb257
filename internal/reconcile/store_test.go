package reconcile

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestMemoryStoreForgetsOldIDs: ids marked longer ago than the store keeps them are
// pruned, so a long-running process without JetStream does not grow without end.
func TestMemoryStoreForgetsOldIDs(t *testing.T) {
	now := time.Date(2024, 11, 28, 12, 0, 0, 0, time.UTC)
	s := NewMemoryStoreFor(24*time.Hour, func() time.Time { return now }).(*memoryStore)
	ctx := context.Background()
	for i := range 10000 { // a report a minute for a week
		now = now.Add(time.Minute)
		s.MarkSeen(ctx, fmt.Sprint("id-", i))
	}
	if n := s.size(); n > 24*60+24*60/16+1 {
		t.Fatalf("%d ids held; want at most a day's worth (1440) plus one prune interval", n)
	}
	if ok, _ := s.Seen(ctx, "id-9999"); !ok {
		t.Fatal("the newest id is forgotten")
	}
	if ok, _ := s.Seen(ctx, "id-0"); ok {
		t.Fatal("an id a week old is still held")
	}
}
