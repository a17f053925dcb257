package natspub

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

// fakeClock is the publisher's `now` in tests: the cache intervals pass without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(p *Publisher) *fakeClock {
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p.now = c.now
	return c
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// refusingStream creates a stream on zuul.> that holds one message and refuses every new
// one (MaxMsgs 1, DiscardNew): a report published into it is not stored, and only the
// stream's acknowledgement says so.
func refusingStream(t *testing.T, nc *nats.Conn) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZUUL", Subjects: []string{"zuul.>"},
		MaxMsgs: 1, Discard: jetstream.DiscardNew, Duplicates: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "zuul.filler", []byte("filler")); err != nil {
		t.Fatal(err)
	}
	return st
}

func streamMsgs(t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// syncBuffer is a log sink the code under test and the test share.
type syncBuffer = testenv.Buffer

// TestJetStreamAPIDeniedIsRetried (issue 23 item 2): the bridge's NATS user may publish on
// zuul.> but not on the JetStream API. The lookup's request is refused (an asynchronous
// permissions violation, no answer); that is not "no JetStream": a core publish into the
// stream, which refuses it, would be confirmed by a flush and the report acknowledged
// although nothing stored it. The send must fail retryably, name the missing permission,
// and the failure is logged once, not per report.
func TestJetStreamAPIDeniedIsRetried(t *testing.T) {
	s := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
		Users: []*server.User{
			{Username: "admin", Password: "pw"},
			{Username: "bridge", Password: "pw", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{"zuul.>"}}}},
		}})
	admin := natstest.Connect(t, s.ClientURL(), nats.UserInfo("admin", "pw"))
	st := refusingStream(t, admin)

	nc := natstest.Connect(t, s.ClientURL(), nats.UserInfo("bridge", "pw"), nats.ReconnectBufSize(-1),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // the refusals are expected
	var logs syncBuffer
	p, err := NewPublisher(nc, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(p)
	// Longer than the send's deadline: the refusal itself must end the lookup.
	p.lookupTimeout = time.Minute
	sink, _ := p.Sink("r1", RouteConfig{})
	ev := sample(t, "periodic-daily_failure_mixed.json")
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		retry, err := sink.Send(ctx, ev)
		early := ctx.Err() == nil // the refusal, not the deadline, ended the lookup
		cancel()
		if !early {
			t.Errorf("send %d took until its deadline; the server's refusal must end the lookup", i)
		}
		if err == nil || !retry || !errors.Is(err, ErrJetStreamAPIDenied) || !strings.Contains(err.Error(), `"$JS.API.STREAM.NAMES"`) {
			t.Fatalf("send %d with the JetStream API denied: retry=%v err=%v; want a retryable error naming $JS.API.STREAM.NAMES", i, retry, err)
		}
		clock.advance(failureTTL) // the next send looks up again
	}
	if n := streamMsgs(t, st); n != 1 {
		t.Errorf("stream holds %d messages, want only the filler", n)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "$JS.API.STREAM.NAMES") {
		t.Errorf("want one log line naming the permission, got %d:\n%s", n, logs.String())
	}
}

// TestFullStreamFailsTheSecondReport (issue 27 item 3): a stream that takes one message;
// the first report is stored and confirmed, the second is refused by the stream, and only
// its acknowledgement can tell: the send fails. Catches every publish made core, and a
// cache that forgets the stream name after the first lookup.
func TestFullStreamFailsTheSecondReport(t *testing.T) {
	s := natstest.Start(t, true)
	nc := connect(t, s.ClientURL())
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZUUL", Subjects: []string{"zuul.>"},
		MaxMsgs: 1, Discard: jetstream.DiscardNew, Duplicates: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewPublisher(nc, zerolog.Nop())
	sink, _ := p.Sink("r1", RouteConfig{})
	first := sample(t, "periodic-daily_failure_mixed.json")
	if retry, err := sink.Send(ctx, first); err != nil {
		t.Fatalf("first report: retry=%v err=%v", retry, err)
	}
	if n := streamMsgs(t, st); n != 1 {
		t.Fatalf("stream holds %d messages after the first report, want 1", n)
	}
	second := *first
	second.ID += "-second"
	if retry, err := sink.Send(ctx, &second); err == nil {
		t.Fatalf("second report into a full stream: retry=%v, no error; want the stream's refusal", retry)
	}
	if n := streamMsgs(t, st); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

// TestStreamCreatedLaterIsUsed: a subject JetStream said no stream covers is published
// core; a stream created afterwards is used (its acknowledgement decides) once the
// re-check interval has passed.
func TestStreamCreatedLaterIsUsed(t *testing.T) {
	s := natstest.Start(t, true)
	nc := connect(t, s.ClientURL())
	p, _ := NewPublisher(nc, zerolog.Nop())
	clock := newFakeClock(p)
	sink, _ := p.Sink("r1", RouteConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := sample(t, "periodic-daily_failure_mixed.json")
	if retry, err := sink.Send(ctx, ev); err != nil {
		t.Fatalf("send without a stream: retry=%v err=%v", retry, err)
	}
	st := refusingStream(t, nc)
	clock.advance(coreTTL)
	later := *ev
	later.ID += "-later"
	if retry, err := sink.Send(ctx, &later); err == nil {
		t.Fatalf("send after the re-check interval into a stream that refuses it: retry=%v, no error", retry)
	}
	if n := streamMsgs(t, st); n != 1 {
		t.Errorf("stream holds %d messages, want only the filler", n)
	}
}

// TestLookupTimeoutIsRetried: something listens on the JetStream API but never answers
// (no JetStream here, yet no "no responders" either), as in a cluster without a meta
// leader. The send fails retryably instead of being published core; the failure is
// repeated without a new lookup for failureTTL; once JetStream answers, sends go on.
func TestLookupTimeoutIsRetried(t *testing.T) {
	s := natstest.Start(t, false)
	other := connect(t, s.ClientURL())
	api, err := other.SubscribeSync("$JS.API.>")
	if err != nil {
		t.Fatal(err)
	}
	reports, err := other.SubscribeSync("zuul.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, s.ClientURL())
	p, _ := NewPublisher(nc, zerolog.Nop())
	clock := newFakeClock(p)
	p.lookupTimeout = 100 * time.Millisecond
	sink, _ := p.Sink("r1", RouteConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := sample(t, "periodic-daily_failure_mixed.json")
	send := func(what string) error {
		t.Helper()
		retry, err := sink.Send(ctx, ev)
		if err != nil && !retry {
			t.Fatalf("%s: not retryable: %v", what, err)
		}
		return err
	}
	// marker publishes on the bridge's connection and returns what subscription sub got
	// before it: the connection keeps order, so that is everything the bridge sent there.
	marker := func(sub *nats.Subscription, subject string) (before int) {
		t.Helper()
		if err := nc.Publish(subject, nil); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("waiting for %s: %v", subject, err)
			}
			if m.Subject == subject {
				return before
			}
			before++
		}
	}

	if err := send("send with the API silent"); !errors.Is(err, errLookupTimeout) {
		t.Fatalf("send with the JetStream API silent: %v; want a lookup timeout", err)
	}
	if err := send("second send"); !errors.Is(err, errLookupTimeout) {
		t.Fatalf("second send within failureTTL: %v; want the same failure", err)
	}
	if n := marker(api, "$JS.API.marker"); n != 1 {
		t.Errorf("%d lookups for two sends within failureTTL, want 1", n)
	}
	if n := marker(reports, "zuul.marker"); n != 0 {
		t.Errorf("%d reports published although no lookup succeeded", n)
	}

	clock.advance(failureTTL)
	if err := send("send after failureTTL"); !errors.Is(err, errLookupTimeout) {
		t.Fatalf("send after failureTTL: %v; want a lookup timeout", err)
	}
	if n := marker(api, "$JS.API.marker"); n != 1 {
		t.Errorf("%d lookups after failureTTL, want 1", n)
	}

	// While one send probes the API again, the others fail at once with the cached failure
	// instead of stalling their workers on lookups of their own.
	clock.advance(failureTTL)
	p.lookupTimeout = time.Minute
	pctx, pcancel := context.WithCancel(ctx)
	probed := make(chan error, 1)
	go func() {
		_, err := sink.Send(pctx, ev)
		probed <- err
	}()
	if _, err := api.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no probing lookup: %v", err)
	}
	qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = sink.Send(qctx, ev)
	qcancel()
	if !errors.Is(err, errLookupTimeout) {
		t.Errorf("send during a probe: %v; want the cached lookup failure at once", err)
	}
	pcancel()
	if err := <-probed; err == nil {
		t.Error("the probe cancelled by its caller succeeded")
	}
	p.lookupTimeout = 100 * time.Millisecond

	// No listener: "no responders", i.e. no JetStream at all. Now core publishing is right.
	if err := api.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	clock.advance(failureTTL)
	if err := send("send with no JetStream"); err != nil {
		t.Fatalf("send on a server lacking JetStream: %v", err)
	}
	if n := marker(reports, "zuul.marker"); n != 1 {
		t.Errorf("%d reports published, want 1", n)
	}
}

// TestCoreConfirmWaitsForTheServer (issue 27 item 9): with the server's answers held back
// by a proxy, the confirmation of a core publish must time out retryably: only the flush's
// round trip proves the server has the report.
func TestCoreConfirmWaitsForTheServer(t *testing.T) {
	s := natstest.Start(t, false)
	px := startProxy(t, s.Addr().String())
	nc := connect(t, "nats://"+px.addr())
	p, _ := NewPublisher(nc, zerolog.Nop())
	sink, _ := p.Sink("r1", RouteConfig{})
	ev := sample(t, "periodic-daily_failure_mixed.json")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if retry, err := sink.Send(ctx, ev); err != nil { // finds the subject uncovered (no JetStream)
		t.Fatalf("send through the proxy: retry=%v err=%v", retry, err)
	}
	px.hold()
	second := *ev
	second.ID += "-held"
	hctx, hcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer hcancel()
	if retry, err := sink.Send(hctx, &second); err == nil || !retry {
		t.Fatalf("send with the server's answers held back: retry=%v err=%v; want a retryable error", retry, err)
	}
}

// proxy forwards TCP connections to a server; hold stops the server-to-client direction.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	cond   *sync.Cond
	held   bool
	closed bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{ln: ln, target: target}
	px.cond = sync.NewCond(&px.mu)
	px.wg.Add(1)
	go px.accept()
	t.Cleanup(px.close)
	return px
}

func (px *proxy) addr() string { return px.ln.Addr().String() }

func (px *proxy) accept() {
	defer px.wg.Done()
	for {
		client, err := px.ln.Accept()
		if err != nil {
			return
		}
		srv, err := net.Dial("tcp", px.target)
		if err != nil {
			client.Close()
			continue
		}
		px.mu.Lock()
		if px.closed {
			px.mu.Unlock()
			client.Close()
			srv.Close()
			return
		}
		px.conns = append(px.conns, client, srv)
		px.wg.Add(2)
		px.mu.Unlock()
		go px.pipe(srv, client, false)
		go px.pipe(client, srv, true)
	}
}

// pipe copies src to dst; gated, it waits while the proxy holds before each write.
func (px *proxy) pipe(dst, src net.Conn, gated bool) {
	defer px.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if gated && !px.wait() {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (px *proxy) wait() bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	for px.held && !px.closed {
		px.cond.Wait()
	}
	return !px.closed
}

func (px *proxy) hold() {
	px.mu.Lock()
	px.held = true
	px.mu.Unlock()
}

func (px *proxy) close() {
	px.mu.Lock()
	px.closed = true
	px.cond.Broadcast()
	conns := px.conns
	px.mu.Unlock()
	px.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	px.wg.Wait()
}
