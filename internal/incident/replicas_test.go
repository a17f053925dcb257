package incident_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// replica is one bridge process: its own NATS connection, key store and manager.
type replica struct {
	m    *incident.Manager
	sink *incident.Sink
	obs  *observer
}

// cluster is two replicas (same BridgeID, same bucket) in front of one status page.
type cluster struct {
	t     *testing.T
	fake  *statuspagefake.Fake
	clock *clock
	nats  *server.Server
	a, b  *replica
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, fake: statuspagefake.New(t, statuspagefake.Options{}), clock: &clock{t: t0}, nats: natstest.Start(t, true)}
	c.a, c.b = c.replica("a"), c.replica("b")
	return c
}

func (c *cluster) replica(id string) *replica {
	c.t.Helper()
	nc, err := nats.Connect(c.nats.ClientURL())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	store, err := kvstore.NewCAS(c.t.Context(), nc, kvstore.CASOptions{Timeout: time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	client, err := statuspage.NewClient(statuspage.ClientOptions{BaseURL: c.fake.URL()})
	if err != nil {
		c.t.Fatal(err)
	}
	r := &replica{obs: &observer{}}
	r.m = incident.NewManager(incident.ManagerOptions{
		Client: client, Log: zerolog.New(zerolog.NewTestWriter(c.t)).With().Str("replica", id).Logger(),
		Observer: r.obs, Now: c.clock.Now, BridgeID: "test", KeyStore: store, ReplicaID: id,
	})
	cfg := incident.DefaultRouteConfig()
	cfg.Component = "Zuul"
	if r.sink, err = r.m.AddRoute(routeName, cfg); err != nil {
		c.t.Fatal(err)
	}
	if err := r.m.Start(c.t.Context()); err != nil {
		c.t.Fatal(err)
	}
	return r
}

// keyed is a report of project k (one incident key per project).
func keyed(k, n int, outcome zuul.Outcome, ts time.Time) *zuul.Event {
	e := ev(n, outcome, ts)
	e.Project = fmt.Sprintf("SovereignCloudStack/project-%d", k)
	e.ID = fmt.Sprintf("p%d-%s", k, e.ID)
	return e
}

// deliver sends ev like the pipeline does: again while Send says retry, until a deadline.
func deliver(r *replica, ev *zuul.Event) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		retry, err := r.sink.Send(context.Background(), ev)
		if !retry {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still retried at the deadline: %w", err)
		}
		time.Sleep(2 * time.Millisecond) // the pipeline's backoff
	}
}

// byProject groups the fake's incidents by the project named in their title.
func byProject(incs []statuspagefake.Incident) map[string][]statuspagefake.Incident {
	out := map[string][]statuspagefake.Incident{}
	for _, inc := range incs {
		_, p, _ := strings.Cut(inc.DisplayName, " of ")
		p, _, _ = strings.Cut(p, " (")
		out[p] = append(out[p], inc)
	}
	return out
}

// Two replicas receive the two failing reports of one key at the same moment, for 20
// keys in parallel and three outages in a row: exactly one incident per key and outage,
// the other report becomes its update, and the success resolves it whichever replica it
// reaches (also the one that did not open it, which leaves the opener's memory stale).
func TestReplicasOpenOnce(t *testing.T) {
	c := newCluster(t)
	const keys, rounds = 20, 3
	for round := range rounds {
		began := hours(round * 24)
		var wg sync.WaitGroup
		errs := make(chan error, 4*keys)
		for k := range keys {
			for i, r := range []*replica{c.a, c.b} {
				wg.Go(func() {
					if err := deliver(r, keyed(k, 10*round+i, zuul.OutcomeFailure, began.Add(time.Duration(i)*time.Minute))); err != nil {
						errs <- fmt.Errorf("round %d key %d replica %d: %w", round, k, i, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for p, incs := range byProject(c.fake.Incidents()) {
			if len(incs) != round+1 {
				t.Errorf("round %d, %s: %d incidents, want %d", round, p, len(incs), round+1)
				continue
			}
			open := incs[len(incs)-1]
			for _, inc := range incs {
				if inc.EndedAt == nil {
					open = inc
				}
			}
			if open.EndedAt != nil || len(open.Updates) != 1 {
				t.Errorf("round %d, %s: open incident ended=%v with %d updates, want open with 1", round, p, open.EndedAt != nil, len(open.Updates))
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		// Successes: even keys reach replica b, odd keys replica a.
		for k := range keys {
			r := c.a
			if k%2 == 0 {
				r = c.b
			}
			wg.Go(func() {
				if err := deliver(r, keyed(k, 10*round+5, zuul.OutcomeSuccess, began.Add(time.Hour))); err != nil {
					t.Errorf("round %d key %d success: %v", round, k, err)
				}
			})
		}
		wg.Wait()
		for _, inc := range c.fake.Incidents() {
			if inc.EndedAt == nil || len(inc.Updates) != 2 || inc.Updates[1].DisplayName != "Resolved" {
				t.Fatalf("round %d: %s ended=%v updates=%d, want ended with update + closing", round, inc.DisplayName, inc.EndedAt != nil, len(inc.Updates))
			}
		}
	}
	aOpened, aUpdated, aResolved, _ := c.a.obs.get()
	bOpened, bUpdated, bResolved, _ := c.b.obs.get()
	eq(t, "opened (both replicas)", aOpened+bOpened, keys*rounds)
	eq(t, "updated (both replicas)", aUpdated+bUpdated, keys*rounds)
	eq(t, "resolved (both replicas)", aResolved+bResolved, keys*rounds)
	// Both replicas took part: each applied its own failing report of every key and
	// round (opening or updating), and resolved the keys whose success it received.
	eq(t, "replica a: opened+updated", aOpened+aUpdated, keys*rounds)
	eq(t, "replica b: opened+updated", bOpened+bUpdated, keys*rounds)
	eq(t, "replica a: resolved (odd keys)", aResolved, keys/2*rounds)
	eq(t, "replica b: resolved (even keys)", bResolved, keys/2*rounds)
	t.Logf("opened by a %d, by b %d", aOpened, bOpened)
}

// Failures alternating between the replicas reach one incident as updates with one
// running count, and a report redelivered to the other replica is applied once.
func TestReplicasShareRunCountAndRedelivery(t *testing.T) {
	c := newCluster(t)
	for _, step := range []struct {
		r *replica
		n int
	}{{c.a, 1}, {c.b, 2}, {c.a, 3}, {c.b, 1}, {c.a, 2}, {c.b, 4}} {
		if err := deliver(step.r, fail(step.n, hours(step.n))); err != nil {
			t.Fatal(err)
		}
	}
	incs := c.fake.Incidents()
	eq(t, "incidents", len(incs), 1)
	var runs []string
	for _, u := range incs[0].Updates {
		runs = append(runs, regexp.MustCompile(`\d+ nights in a row`).FindString(u.Description))
	}
	eq(t, "updates", strings.Join(runs, "; "), "2 nights in a row; 3 nights in a row; 4 nights in a row")
	// Both replicas took part: a opened (run 1) and updated (run 3), b updated (runs 2
	// and 4); the redeliveries changed nothing on either.
	aOpened, aUpdated, _, _ := c.a.obs.get()
	bOpened, bUpdated, _, _ := c.b.obs.get()
	eq(t, "replica a: opened", aOpened, 1)
	eq(t, "replica a: updated", aUpdated, 1)
	eq(t, "replica b: opened", bOpened, 0)
	eq(t, "replica b: updated", bUpdated, 2)
}

// People win across replicas: an incident ended by hand (noticed by one replica's
// refresh) is not reopened by the other replica; a success on either lifts it for both.
func TestReplicasHandEnded(t *testing.T) {
	c := newCluster(t)
	if err := deliver(c.a, fail(1, hours(0))); err != nil {
		t.Fatal(err)
	}
	c.fake.EndIncident(c.fake.Incidents()[0].ID, hours(1))
	if err := c.a.m.RefreshIncidents(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, r := range []*replica{c.b, c.a} {
		if err := deliver(r, fail(2+i, hours(24+i))); err != nil {
			t.Fatal(err)
		}
	}
	incs := c.fake.Incidents()
	eq(t, "incidents while hand-ended", len(incs), 1)
	eq(t, "updates on the hand-ended incident", len(incs[0].Updates), 0)
	_, _, _, sup := c.b.obs.get()
	eq(t, "b suppressed", sup["hand-ended"], 1)

	if err := deliver(c.b, ok(4, hours(48))); err != nil {
		t.Fatal(err)
	}
	if err := deliver(c.a, fail(5, hours(72))); err != nil {
		t.Fatal(err)
	}
	eq(t, "new outage after the success on the other replica", len(c.fake.Incidents()), 2)
}

// A replica dies between its POST /incidents and storing the id (the answer is lost):
// the other replica meets the claim, looks at the page for the incident the claim
// describes (its title and beganAt), adopts it at once (no waiting for a timeout) and
// applies its own report as an update instead of opening a second incident.
func TestReplicasAbandonedClaim(t *testing.T) {
	c := newCluster(t)
	c.fake.SetFault(loseAnswerOnce("POST", "/incidents"))
	if retry, err := c.a.sink.Send(t.Context(), fail(1, hours(0))); !retry || err == nil {
		t.Fatalf("lost POST answer: retry=%v err=%v", retry, err)
	}
	c.fake.SetFault(nil)
	c.clock.Set(hours(0).Add(5 * time.Second)) // well within ClaimTimeout
	if retry, err := c.b.sink.Send(t.Context(), fail(2, hours(1))); retry || err != nil {
		t.Fatalf("claim of a whose incident is on the page: retry=%v err=%v, want adopted and updated", retry, err)
	}
	incs := c.fake.Incidents()
	eq(t, "incidents", len(incs), 1)
	eq(t, "updates", len(incs[0].Updates), 1)
	bOpened, bUpdated, _, _ := c.b.obs.get()
	eq(t, "b opened", bOpened, 0)
	eq(t, "b updated", bUpdated, 1)
	// a's redelivery finds its report in the incident b adopted.
	if err := deliver(c.a, fail(1, hours(0))); err != nil {
		t.Fatal(err)
	}
	// b's own redelivery too.
	if err := deliver(c.b, fail(2, hours(1))); err != nil {
		t.Fatal(err)
	}
	incs = c.fake.Incidents()
	eq(t, "incidents after the redeliveries", len(incs), 1)
	eq(t, "updates after the redeliveries", len(incs[0].Updates), 1)
}

// A replica claims the key and dies before its POST /incidents reaches the page: the
// other replica waits while the claim may still be in flight (ErrKeyBusy), and opens
// exactly one incident once the claim's short deadline (ClaimTimeout, 30s) has passed.
func TestReplicasClaimNeverLanded(t *testing.T) {
	c := newCluster(t)
	c.fake.FailNext(1, statuspagefake.Fault{CloseConn: true})
	if retry, err := c.a.sink.Send(t.Context(), fail(1, hours(0))); !retry || err == nil {
		t.Fatalf("closed POST: retry=%v err=%v", retry, err)
	}
	c.clock.Set(hours(0).Add(5 * time.Second))
	if retry, err := c.b.sink.Send(t.Context(), fail(2, hours(1))); !retry || !errors.Is(err, incident.ErrKeyBusy) {
		t.Fatalf("young claim of a, nothing on the page: retry=%v err=%v, want ErrKeyBusy", retry, err)
	}
	eq(t, "incidents while a's claim is young", len(c.fake.Incidents()), 0)
	c.clock.Set(hours(0).Add(31 * time.Second)) // past the claim's deadline
	if retry, err := c.b.sink.Send(t.Context(), fail(2, hours(1))); retry || err != nil {
		t.Fatalf("expired claim of a: retry=%v err=%v, want opened", retry, err)
	}
	incs := c.fake.Incidents()
	eq(t, "incidents", len(incs), 1)
	if len(incs) == 1 {
		eq(t, "updates", len(incs[0].Updates), 0)
	}
	bOpened, _, _, _ := c.b.obs.get()
	eq(t, "b opened", bOpened, 1)
}

// NATS down: Send applies nothing and asks for the report again.
func TestReplicasStoreDown(t *testing.T) {
	c := newCluster(t)
	c.nats.Shutdown()
	c.nats.WaitForShutdown()
	retry, err := c.a.sink.Send(t.Context(), fail(1, hours(0)))
	if !retry || err == nil || !statuspage.Retryable(err) {
		t.Fatalf("store down: retry=%v err=%v", retry, err)
	}
	if errors.Is(err, kvstore.ErrNoKey) {
		t.Errorf("error claims a missing key: %v", err)
	}
	eq(t, "incidents", len(c.fake.Incidents()), 0)
}

// Two successes of one key reach both replicas at once (both hold the incident): one
// replica resolves it, with one closing update; the other finds it resolved.
func TestReplicasResolveOnce(t *testing.T) {
	c := newCluster(t)
	const keys = 20
	for k := range keys {
		if err := deliver(c.a, keyed(k, 1, zuul.OutcomeFailure, hours(0))); err != nil {
			t.Fatal(err)
		}
		if err := deliver(c.b, keyed(k, 2, zuul.OutcomeFailure, hours(1))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for k := range keys {
		for i, r := range []*replica{c.a, c.b} {
			wg.Go(func() {
				if err := deliver(r, keyed(k, 3+i, zuul.OutcomeSuccess, hours(2))); err != nil {
					t.Errorf("key %d replica %d: %v", k, i, err)
				}
			})
		}
	}
	wg.Wait()
	incs := c.fake.Incidents()
	eq(t, "incidents", len(incs), keys)
	for _, inc := range incs {
		if inc.EndedAt == nil || len(inc.Updates) != 2 {
			t.Errorf("%s: ended=%v updates=%d, want ended with update + one closing", inc.DisplayName, inc.EndedAt != nil, len(inc.Updates))
		}
	}
	eq(t, "open incidents a", c.a.m.OpenIncidents(), 0)
	eq(t, "open incidents b", c.b.m.OpenIncidents(), 0)
	// Both replicas took part: a opened every incident, b updated each. Each incident is
	// counted resolved once, by the replica that ended it: the other finds it ended by a
	// closing PATCH it did not send, which is not its resolution.
	aOpened, aUpdated, aResolved, _ := c.a.obs.get()
	bOpened, bUpdated, bResolved, _ := c.b.obs.get()
	eq(t, "replica a: opened", aOpened, keys)
	eq(t, "replica b: updated", bUpdated, keys)
	eq(t, "replica a: updated + replica b: opened", aUpdated+bOpened, 0)
	if aResolved+bResolved != keys {
		t.Errorf("resolved by a %d, by b %d: want %d together, one per key", aResolved, bResolved, keys)
	}
}
