package kvstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

// connectTo connects to first and knows the other servers of c to reconnect to, as the
// bridge does with BRIDGE_NATS_URL listing every node.
func connectTo(t *testing.T, c *natstest.Cluster, first *server.Server) *nats.Conn {
	urls := []string{c.ClientURL(first)}
	for _, u := range c.URLs {
		if u != c.ClientURL(first) {
			urls = append(urls, u)
		}
	}
	return natstest.Connect(t, strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
}

// casUntil repeats one compare-and-set write (read, then update with the revision read)
// until it succeeds, and returns how long that took. Every failure on the way must be an
// error the incident manager retries (not a conflict reported as final, not a hang).
func casUntil(t *testing.T, s *kvstore.CAS, key string, value string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	seen := map[string]bool{}
	defer func() {
		for e := range seen {
			t.Logf("error while resuming: %s", e)
		}
	}()
	for time.Since(start) < within {
		_, rev, err := s.Get(t.Context(), key)
		if err == nil {
			_, err = s.Update(t.Context(), key, []byte(value), rev)
		}
		if err == nil {
			return time.Since(start)
		}
		last = err
		if errors.Is(err, kvstore.ErrNoKey) || errors.Is(err, kvstore.ErrKeyExists) {
			t.Fatalf("a lost leader read as a final answer: %v", err)
		}
		seen[strings.ReplaceAll(err.Error(), key, "K")] = true
		time.Sleep(20 * time.Millisecond) // pacing of the retry, not synchronisation
	}
	t.Fatalf("no compare-and-set write within %s: %v", within, last)
	return 0
}

// Issue 23: on a three-node cluster, the incident key bucket with three replicas keeps
// taking compare-and-set writes after the node leading its stream dies, through the same
// handles, from a client connected to the dead node (it reconnects) and from one connected
// to a survivor.
func TestCASSurvivesLeaderLoss(t *testing.T) {
	for _, mode := range []string{"stop", "crash"} {
		t.Run(mode, func(t *testing.T) { testCASLeaderLoss(t, mode) })
	}
}

func testCASLeaderLoss(t *testing.T, mode string) {
	c := natstest.StartCluster(t, 3)
	const bucket = "incidents"
	// The first client creates the bucket; the meta leader may still settle, so allow
	// a few attempts as the bridge does at start.
	var setup *kvstore.CAS
	nc0 := connectTo(t, c, c.Servers[0])
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		setup, err = kvstore.NewCAS(t.Context(), nc0, kvstore.CASOptions{Bucket: bucket, Replicas: 3, Timeout: 2 * time.Second})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	if _, err := setup.Create(t.Context(), "key1", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	leader := c.StreamLeader(natstest.KVStream(bucket), 10*time.Second)
	var follower *server.Server
	for _, s := range c.Servers {
		if s != leader {
			follower = s
			break
		}
	}
	onLeader := connectTo(t, c, leader)
	onFollower := connectTo(t, c, follower)
	sl, err := kvstore.NewCAS(t.Context(), onLeader, kvstore.CASOptions{Bucket: bucket, Replicas: 3, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sf, err := kvstore.NewCAS(t.Context(), onFollower, kvstore.CASOptions{Bucket: bucket, Replicas: 3, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Both handles work before the loss (and a stale revision is a conflict on R3 too).
	casUntil(t, sl, "key1", "v1", 5*time.Second)
	casUntil(t, sf, "key1", "v2", 5*time.Second)
	if _, err := sf.Update(t.Context(), "key1", []byte("stale"), 1); !errors.Is(err, kvstore.ErrRevisionMismatch) {
		t.Fatalf("stale update on R3: %v, want ErrRevisionMismatch", err)
	}

	if mode == "crash" {
		c.Crash(leader)
	} else {
		c.Stop(leader)
	}
	df := casUntil(t, sf, "key1", "after-loss-follower", 20*time.Second)
	dl := casUntil(t, sl, "key1", "after-loss-leader", 20*time.Second)
	t.Logf("%s of the leader: compare-and-set resumed %v after it on a client of a surviving node, %v on the client of the lost node",
		mode, df.Round(time.Millisecond), (df + dl).Round(time.Millisecond))
	newLeader := c.StreamLeader(natstest.KVStream(bucket), 10*time.Second)
	if newLeader == leader {
		t.Fatal("the dead node still leads")
	}
	// A read may be answered by any replica (KV direct gets) and lag the write by a
	// moment: the compare-and-set writes never do, a stale revision is a conflict.
	var v []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v, _, err = sf.Get(t.Context(), "key1"); (err == nil && string(v) == "after-loss-leader") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || string(v) != "after-loss-leader" {
		t.Fatalf("value after the loss: %q, %v", v, err)
	}
	// Create and Delete work on the new leader too.
	rev, err := sl.Create(t.Context(), "key2", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sf.Delete(t.Context(), "key2", rev); err != nil {
		t.Fatal(err)
	}
}

// Issue 23: a bucket created with one replica (an older bridge, or the setting raised
// later) is scaled up to the replicas asked when the bridge opens it, keeping its
// values; so is the stream behind the token chain and the reconciliation bucket.
func TestBucketScaledUp(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nc := connectTo(t, c, c.Servers[0])
	js, _ := jetstream.New(nc)
	var r1 *kvstore.CAS
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		if r1, err = kvstore.NewCAS(t.Context(), nc, kvstore.CASOptions{Bucket: "b", Timeout: 2 * time.Second}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	if _, err := r1.Create(t.Context(), "key1", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if n := natstest.Replicas(t, js, "KV_b"); n != 1 {
		t.Fatalf("replicas %d, want 1", n)
	}
	reg := prometheus.NewRegistry()
	check := kvstore.NewReplicaCheck(zerolog.Nop(), reg)
	r3, err := kvstore.NewCAS(t.Context(), nc, kvstore.CASOptions{Bucket: "b", Replicas: 3, ReplicaCheck: check, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if n := natstest.Replicas(t, js, "KV_b"); n != 3 {
		t.Fatalf("replicas after opening with 3: %d", n)
	}
	if v, _, err := r3.Get(t.Context(), "key1"); err != nil || string(v) != "kept" {
		t.Fatalf("value after scaling: %q %v", v, err)
	}
	if got := short(t, reg, "bucket b"); got != 0 {
		t.Errorf("replicas short gauge %v, want 0", got)
	}

	// The reconciliation bucket and the token chain's bucket, the same way.
	if _, err := kvstore.NewSeen(t.Context(), js, "rec"); err != nil {
		t.Fatal(err)
	}
	if _, err := kvstore.OpenSeen(t.Context(), js, kvstore.SeenOptions{Bucket: "rec", Replicas: 3, ReplicaCheck: check}); err != nil {
		t.Fatal(err)
	}
	chain1 := kvstore.NewTokenChain(nc, kvstore.TokenChainOptions{Bucket: "chain"})
	if _, err := chain1.Save(t.Context(), []byte("t1"), 0); err != nil {
		t.Fatal(err)
	}
	chain3 := kvstore.NewTokenChain(nc, kvstore.TokenChainOptions{Bucket: "chain", Replicas: 3, ReplicaCheck: check})
	if b, _, err := chain3.Load(t.Context()); err != nil || string(b) != "t1" {
		t.Fatalf("chain after scaling: %q %v", b, err)
	}
	for _, s := range []string{"KV_rec", "KV_chain"} {
		if n := natstest.Replicas(t, js, s); n != 3 {
			t.Errorf("%s: replicas %d, want 3", s, n)
		}
	}
	if notes := check.Notes(); len(notes) != 0 {
		t.Errorf("notes: %q", notes)
	}
}

// Issue 23: on a single server, three replicas cannot be had: creating a bucket fails
// with an error that names the setting; an existing one-replica bucket is used but
// reported (log, gauge, note), never silently, and without a check it is an error.
func TestReplicasRefused(t *testing.T) {
	srv := natstest.Start(t, true)
	nc := natstest.Connect(t, srv.ClientURL())
	var log strings.Builder
	reg := prometheus.NewRegistry()
	check := kvstore.NewReplicaCheck(zerolog.New(&log), reg)
	_, err := kvstore.NewCAS(t.Context(), nc, kvstore.CASOptions{Bucket: "new", Replicas: 3, ReplicaCheck: check})
	if err == nil || !strings.Contains(err.Error(), kvstore.ReplicasSetting) || !strings.Contains(err.Error(), "3 replicas") {
		t.Fatalf("creating with 3 replicas on one server: %v; want an error naming %s", err, kvstore.ReplicasSetting)
	}
	t.Logf("error: %v", err)

	if _, err := kvstore.NewCAS(t.Context(), nc, kvstore.CASOptions{Bucket: "old"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kvstore.NewCAS(t.Context(), nc, kvstore.CASOptions{Bucket: "old", Replicas: 3}); err == nil ||
		!strings.Contains(err.Error(), kvstore.ReplicasSetting) {
		t.Fatalf("scaling refused without a check: %v, want an error naming the setting", err)
	}
	if _, err := kvstore.NewCAS(t.Context(), nc, kvstore.CASOptions{Bucket: "old", Replicas: 3, ReplicaCheck: check}); err != nil {
		t.Fatalf("scaling refused with a check: %v, want the bucket used and reported", err)
	}
	if got := short(t, reg, "bucket old"); got != 2 {
		t.Errorf("replicas short gauge %v, want 2", got)
	}
	notes := check.Notes()
	var found bool
	for _, n := range notes {
		found = found || strings.HasPrefix(n, "bucket old has 1 of the 3 replicas asked ("+kvstore.ReplicasSetting+")")
	}
	if !found {
		t.Errorf("notes %q lack bucket old", notes)
	}
	for _, want := range []string{`"object":"bucket old"`, `"replicas":1`, `"replicas_asked":3`, "nats stream edit KV_old --replicas 3"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %s: %s", want, log.String())
		}
	}
}

// short reads zuul_bridge_jetstream_replicas_short{object} (-1: not set).
func short(t *testing.T, reg *prometheus.Registry, object string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "zuul_bridge_jetstream_replicas_short" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "object" && l.GetValue() == object {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}
