package main

import (
	"testing"
	"time"
)

// The grace period bounds the whole shutdown: closing ends with it, deliveries end a
// reserve earlier (a quarter of the grace, at most 5s), so the acks of what finished
// can still be sent.
func TestShutdownContextsSplitTheGrace(t *testing.T) {
	for _, c := range []struct{ grace, reserve time.Duration }{
		{2 * time.Second, 500 * time.Millisecond},
		{20 * time.Second, 5 * time.Second},
		{2 * time.Minute, 5 * time.Second},
	} {
		start := time.Now()
		drain, closing, cancel := shutdownContexts(c.grace)
		dd, ok1 := drain.Deadline()
		cd, ok2 := closing.Deadline()
		cancel()
		if !ok1 || !ok2 {
			t.Fatalf("grace %v: a context without deadline", c.grace)
		}
		// The deadlines are set from the clock at the call: compare with slack for the call.
		const slack = time.Second
		if got := cd.Sub(start); got < c.grace || got > c.grace+slack {
			t.Errorf("grace %v: closing ends %v after the start, want the grace", c.grace, got)
		}
		if got := cd.Sub(dd); got != c.reserve {
			t.Errorf("grace %v: deliveries end %v before closing, want %v", c.grace, got, c.reserve)
		}
		if drain.Err() == nil || closing.Err() == nil {
			t.Errorf("grace %v: cancel did not end both contexts", c.grace)
		}
	}
}
