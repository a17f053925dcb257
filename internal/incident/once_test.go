package incident_test

import (
	"errors"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// A key another replica is opening or resolving gives a retryable error the caller can
// recognise (ErrKeyBusy; ErrKeyResolving is a kind of it), so that the outbox worker asks
// again soon instead of with its long backoff.
func TestReplicasBusyKeyIsRecognisable(t *testing.T) {
	c := newCluster(t)
	// a claims the key; its POST never reaches the page (connection closed, no answer).
	c.fake.FailNext(1, statuspagefake.Fault{CloseConn: true})
	if retry, err := c.a.sink.Send(t.Context(), fail(1, hours(0))); !retry || err == nil {
		t.Fatalf("closed POST: retry=%v err=%v", retry, err)
	}
	retry, err := c.b.sink.Send(t.Context(), fail(2, hours(1)))
	if !retry || !errors.Is(err, incident.ErrKeyBusy) || errors.Is(err, incident.ErrKeyResolving) || !statuspage.Retryable(err) {
		t.Fatalf("young claim of a: retry=%v err=%v, want ErrKeyBusy", retry, err)
	}

	// a opens it after all, then starts resolving; its closing POST never reaches the page.
	if err := deliver(c.a, fail(1, hours(0))); err != nil {
		t.Fatal(err)
	}
	c.clock.Set(hours(2))
	c.fake.SetFault(faultOn("POST", "/updates", statuspagefake.Fault{CloseConn: true}))
	if retry, err := c.a.sink.Send(t.Context(), ok(3, hours(2))); !retry || err == nil {
		t.Fatalf("closed closing POST: retry=%v err=%v", retry, err)
	}
	c.fake.SetFault(nil)
	retry, err = c.b.sink.Send(t.Context(), ok(3, hours(2)))
	if !retry || !errors.Is(err, incident.ErrKeyResolving) || !errors.Is(err, incident.ErrKeyBusy) || !statuspage.Retryable(err) {
		t.Fatalf("fence of a: retry=%v err=%v, want ErrKeyResolving (an ErrKeyBusy)", retry, err)
	}
	_ = time.Second
}
