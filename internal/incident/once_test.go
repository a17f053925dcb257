package incident_test

import (
	"errors"
	"regexp"
	"strings"
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
}

// updateRuns lists the run counts the updates of the only incident speak of, in order.
func updateRuns(t *testing.T, incs []statuspagefake.Incident) string {
	t.Helper()
	if len(incs) != 1 {
		t.Fatalf("incidents: got %d, want 1", len(incs))
	}
	var runs []string
	for _, u := range incs[0].Updates {
		if r := regexp.MustCompile(`\d+ nights in a row`).FindString(u.Description); r != "" {
			runs = append(runs, r)
		} else {
			runs = append(runs, u.DisplayName)
		}
	}
	return strings.Join(runs, "; ")
}

// Issue 24.1: replica a posts an update, the page stores it, a never learns (answer
// lost). The report comes again to replica b, whose view of the key's entry is as new as
// the store's: b must not post the same update a second time. a's pending update is in
// the entry (written before the POST), b looks for it on the page and finds it.
func TestReplicasUpdateLostAnswerOnce(t *testing.T) {
	c := newCluster(t)
	if err := deliver(c.a, fail(1, hours(0))); err != nil {
		t.Fatal(err)
	}
	if err := deliver(c.b, fail(2, hours(1))); err != nil { // b now knows the latest entry
		t.Fatal(err)
	}
	c.fake.SetFault(loseAnswerOnce("POST", "/updates"))
	if retry, err := c.a.sink.Send(t.Context(), fail(3, hours(2))); !retry || err == nil {
		t.Fatalf("lost update answer: retry=%v err=%v", retry, err)
	}
	c.fake.SetFault(nil)
	if err := deliver(c.b, fail(3, hours(2))); err != nil {
		t.Fatal(err)
	}
	eq(t, "updates after the redelivery to b", updateRuns(t, c.fake.Incidents()), "2 nights in a row; 3 nights in a row")
	// Both go on with one count; a's own redelivery changes nothing.
	if err := deliver(c.a, fail(3, hours(2))); err != nil {
		t.Fatal(err)
	}
	if err := deliver(c.a, fail(4, hours(3))); err != nil {
		t.Fatal(err)
	}
	eq(t, "updates", updateRuns(t, c.fake.Incidents()), "2 nights in a row; 3 nights in a row; 4 nights in a row")
}

// The same with a restart of the replica instead of a second one.
func TestRestartUpdateLostAnswerOnce(t *testing.T) {
	e := newStoreEnv(t, nil)
	e.send(fail(1, hours(0)))
	e.send(fail(2, hours(1)))
	e.fake.SetFault(loseAnswerOnce("POST", "/updates"))
	if retry, err := e.sink.Send(t.Context(), fail(3, hours(2))); !retry || err == nil {
		t.Fatalf("lost update answer: retry=%v err=%v", retry, err)
	}
	e.fake.SetFault(nil)
	e.restart()
	e.send(fail(3, hours(2)))
	eq(t, "updates after the restart", updateRuns(t, e.incidents()), "2 nights in a row; 3 nights in a row")
	e.send(fail(4, hours(3)))
	eq(t, "updates", updateRuns(t, e.incidents()), "2 nights in a row; 3 nights in a row; 4 nights in a row")
}

// The closing update of a resolve whose answer was lost, the success redelivered to the
// other replica: it waits while a's fence holds (ErrKeyResolving), then finds a's
// closing update on the page and only ends the incident: one closing update.
func TestReplicasClosingLostAnswerOnce(t *testing.T) {
	c := newCluster(t)
	if err := deliver(c.a, fail(1, hours(0))); err != nil {
		t.Fatal(err)
	}
	if err := deliver(c.b, fail(2, hours(1))); err != nil {
		t.Fatal(err)
	}
	c.clock.Set(hours(3))
	c.fake.SetFault(loseAnswerOnce("POST", "/updates"))
	if retry, err := c.a.sink.Send(t.Context(), ok(3, hours(3))); !retry || err == nil {
		t.Fatalf("lost closing answer: retry=%v err=%v", retry, err)
	}
	c.fake.SetFault(nil)
	if retry, err := c.b.sink.Send(t.Context(), ok(3, hours(3))); !retry || !errors.Is(err, incident.ErrKeyResolving) {
		t.Fatalf("fence of a: retry=%v err=%v, want ErrKeyResolving", retry, err)
	}
	c.clock.Set(hours(3).Add(31 * time.Second)) // past the fence's hold
	if err := deliver(c.b, ok(3, hours(3))); err != nil {
		t.Fatal(err)
	}
	incs := c.fake.Incidents()
	eq(t, "updates", updateRuns(t, incs), "2 nights in a row; Resolved")
	if incs[0].EndedAt == nil {
		t.Error("incident not ended")
	}
	eq(t, "open incidents b", c.b.m.OpenIncidents(), 0)
}

// An update a replica recorded as pending but whose POST never reached the page: the
// other replica waits while a's hold lasts (a may be posting it right now), then posts
// it once.
func TestReplicasPendingUpdateNeverLanded(t *testing.T) {
	c := newCluster(t)
	if err := deliver(c.a, fail(1, hours(0))); err != nil {
		t.Fatal(err)
	}
	if err := deliver(c.b, fail(2, hours(1))); err != nil {
		t.Fatal(err)
	}
	c.clock.Set(hours(2))
	c.fake.SetFault(faultOn("POST", "/updates", statuspagefake.Fault{CloseConn: true}))
	if retry, err := c.a.sink.Send(t.Context(), fail(3, hours(2))); !retry || err == nil {
		t.Fatalf("closed update POST: retry=%v err=%v", retry, err)
	}
	c.fake.SetFault(nil)
	if retry, err := c.b.sink.Send(t.Context(), fail(3, hours(2))); !retry || !errors.Is(err, incident.ErrKeyBusy) {
		t.Fatalf("young pending update of a: retry=%v err=%v, want ErrKeyBusy", retry, err)
	}
	c.clock.Set(hours(2).Add(31 * time.Second))
	if err := deliver(c.b, fail(3, hours(2))); err != nil {
		t.Fatal(err)
	}
	if err := deliver(c.a, fail(3, hours(2))); err != nil {
		t.Fatal(err)
	}
	eq(t, "updates", updateRuns(t, c.fake.Incidents()), "2 nights in a row; 3 nights in a row")
}
