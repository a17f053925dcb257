package natstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of embedded servers in the test process. Every connection
// to a server, of clients and of the other servers (routes), goes through a proxy, so that
// Crash can cut a node off at once, as a process killed with SIGKILL or a dead machine is.
type Cluster struct {
	t       testing.TB
	Servers []*server.Server
	// URLs are the client URLs of every server (through its proxy), in the order of
	// Servers; a node that is stopped keeps its place.
	URLs []string

	mu      sync.Mutex
	proxies map[*server.Server][]*proxy // every proxy a server's traffic goes through
}

// URL is every server's client URL separated by commas, as nats.Connect takes them.
func (c *Cluster) URL() string { return strings.Join(c.URLs, ",") }

// StartCluster runs n servers (n >= 3 for a quorum to survive one loss) that form a
// JetStream cluster, each with its own store, and waits until they agree on a meta
// leader and every server is current. They are shut down at the end of the test.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, proxies: map[*server.Server][]*proxy{}}
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = freePort(t)
	}
	// route[i][j]: the proxy server i reaches server j through.
	route := make([][]*proxy, n)
	for i := range n {
		route[i] = make([]*proxy, n)
		for j := range n {
			if i != j {
				route[i][j] = startProxy(t, fmt.Sprintf("127.0.0.1:%d", clusterPorts[j]))
			}
		}
	}
	for i := range n {
		var routes []string
		for j := range n {
			if i != j {
				routes = append(routes, "nats://"+route[i][j].addr())
			}
		}
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "test-cluster", Host: "127.0.0.1", Port: clusterPorts[i],
				// Not reachable: peers use the proxies of Routes only, never a gossiped
				// direct address (which would survive Crash).
				Advertise: "127.0.0.1:1", NoAdvertise: true},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s := StartWith(t, opts)
		client := startProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
		c.Servers = append(c.Servers, s)
		c.URLs = append(c.URLs, "nats://"+client.addr())
		c.proxies[s] = append(c.proxies[s], client)
	}
	for i, s := range c.Servers {
		for j := range n {
			if i != j {
				c.proxies[s] = append(c.proxies[s], route[i][j], route[j][i])
			}
		}
	}
	c.WaitReady(30 * time.Second)
	return c
}

// ClientURL is s's client URL through its proxy.
func (c *Cluster) ClientURL(s *server.Server) string {
	for i, x := range c.Servers {
		if x == s {
			return c.URLs[i]
		}
	}
	c.t.Fatalf("server %s not in the cluster", s.Name())
	return ""
}

// freePort is a TCP port nothing listened on a moment ago (the cluster ports must be
// known before the servers start, as each names the others).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Running are the servers not shut down.
func (c *Cluster) Running() []*server.Server {
	var out []*server.Server
	for _, s := range c.Servers {
		if s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// WaitReady waits until the running servers have a meta leader that knows every peer and
// each running server is current.
func (c *Cluster) WaitReady(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c.ready() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("JetStream cluster not ready within %s", within)
}

func (c *Cluster) ready() bool {
	var leader *server.Server
	for _, s := range c.Running() {
		if s.JetStreamIsLeader() {
			leader = s
		}
	}
	if leader == nil || len(leader.JetStreamClusterPeers()) != len(c.Servers) {
		return false
	}
	for _, s := range c.Running() {
		if !s.JetStreamIsCurrent() {
			return false
		}
	}
	return true
}

// StreamLeader is the server leading stream (in the global account), waiting up to
// within for one to be elected.
func (c *Cluster) StreamLeader(stream string, within time.Duration) *server.Server {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, s := range c.Running() {
			if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
				return s
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("stream %s has no leader after %s", stream, within)
	return nil
}

// Stop shuts s down as an orderly stop does (a rolling update): it hands the leadership
// of its streams to another node first, so nobody waits for an election.
func (c *Cluster) Stop(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
	c.cut(s)
}

// Crash cuts s off from its clients and peers at once (every connection through its
// proxies closed, no more accepted), as SIGKILL or a dead machine does, and then shuts
// it down, which can no longer hand over anything: the others notice only by missing
// heartbeats and elect new leaders after the Raft election timeout. Its store stays.
func (c *Cluster) Crash(s *server.Server) {
	c.cut(s)
	s.Shutdown()
	s.WaitForShutdown()
}

func (c *Cluster) cut(s *server.Server) {
	c.mu.Lock()
	ps := c.proxies[s]
	c.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}

// KVStream is the stream behind key-value bucket.
func KVStream(bucket string) string { return "KV_" + bucket }

// Replicas is how many replicas the stream has, as its configuration says.
func Replicas(t testing.TB, js jetstream.JetStream, stream string) int {
	t.Helper()
	st, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config.Replicas
}
