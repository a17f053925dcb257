package natspub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TestOversizedReportFailsForGood: a report over the server's max_payload fails at once
// and is not retryable; its dead letter fits (head of the payload, size and hash).
func TestOversizedReportFailsForGood(t *testing.T) {
	s := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, MaxPayload: 64 << 10})
	nc := connect(t, s.ClientURL())
	dead, err := nc.SubscribeSync("dl")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewPublisher(nc, zerolog.Nop())
	sink, _ := p.Sink("r1", RouteConfig{IncludeRaw: true})
	ev := sample(t, "periodic-daily_failure_mixed.json")
	ev.Message = strings.Repeat("x", 100<<10)
	retry, err := sink.Send(context.Background(), ev)
	if !errors.Is(err, ErrTooLarge) || retry {
		t.Fatalf("send of a report over max_payload: retry=%v err=%v", retry, err)
	}
	payload := []byte(strings.Repeat("y", 200<<10))
	if err := p.DeadLetterer("dl")(context.Background(), delivery.DeadLetter{Topic: "zuul/x", Payload: payload, ID: ev.ID,
		Route: "r1", Sink: "nats", Reason: err.Error()}); err != nil {
		t.Fatalf("dead letter of an oversized report: %v", err)
	}
	m, err := dead.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	if m.Header.Get("Bridge-Payload-Truncated") != "true" || m.Header.Get("Bridge-Payload-Size") != strconv.Itoa(len(payload)) ||
		m.Header.Get("Bridge-Payload-Sha256") != hex.EncodeToString(sum[:]) || len(m.Data) == 0 || len(m.Data) > 64<<10 ||
		string(m.Data) != string(payload[:len(m.Data)]) {
		t.Fatalf("dead letter: %d bytes, headers %v", len(m.Data), m.Header)
	}
}

// TestDeadLetterNeverOverMaxPayload: whatever the payload and reason, the dead letter fits.
func TestDeadLetterNeverOverMaxPayload(t *testing.T) {
	for _, limit := range []int64{0, 4096, 1 << 20} {
		for _, n := range []int{0, 100, 4000, 1 << 20, 3 << 20} {
			dl := delivery.DeadLetter{Topic: strings.Repeat("t", 5000), Payload: make([]byte, n), ID: strings.Repeat("i", 3000),
				Route: "r", Sink: "nats", Reason: strings.Repeat("é", 3000)}
			msg := DeadLetterMessage("zuul-bridge.deadletter", dl, limit)
			eff := limit
			if eff <= 0 {
				eff = DefaultMaxPayload
			}
			if err := checkFits(msg, eff); err != nil {
				t.Errorf("limit %d, payload %d: %v", limit, n, err)
			}
			if truncated := msg.Header.Get("Bridge-Payload-Truncated") == "true"; truncated != (len(msg.Data) < n) {
				t.Errorf("limit %d, payload %d: truncated header %v with %d bytes", limit, n, truncated, len(msg.Data))
			}
		}
	}
}

func TestOneLineCutsAtRuneBoundary(t *testing.T) {
	for _, s := range []string{strings.Repeat("é", 800), "a" + strings.Repeat("€", 600), strings.Repeat("x", 999) + "日本"} {
		got := oneLine(s)
		if !utf8.ValidString(got) || len(got) > maxHeaderValue+3 || !strings.HasSuffix(got, "...") {
			t.Errorf("oneLine of %d bytes: %d bytes, valid UTF-8 %v", len(s), len(got), utf8.ValidString(got))
		}
	}
	if got := oneLine("a\r\nb"); got != "a  b" {
		t.Errorf("oneLine = %q", got)
	}
}

// TestHostileSubjectFailsForGood: a project name that makes the subject longer than the
// cap fails before anything goes on the wire, and the connection stays up.
func TestHostileSubjectFailsForGood(t *testing.T) {
	s := natstest.Start(t, false)
	nc := connect(t, s.ClientURL())
	p, _ := NewPublisher(nc, zerolog.Nop())
	sink, _ := p.Sink("r1", RouteConfig{})
	ev := sample(t, "periodic-daily_failure_mixed.json")
	ev.Project = strings.Repeat("p", 5000)
	retry, err := sink.Send(context.Background(), ev)
	if !errors.Is(err, ErrBadSubject) || retry {
		t.Fatalf("send with a 5000-character project: retry=%v err=%v", retry, err)
	}
	ev.Project = "ok"
	if _, err := sink.Send(context.Background(), ev); err != nil || !nc.IsConnected() {
		t.Fatalf("next send: %v (connected %v)", err, nc.IsConnected())
	}
}

// TestPermissionViolationFailsTheConfirmation: in a batch confirmed by one flush, only
// the publish the server refused fails, for good, and it is counted.
func TestPermissionViolationFailsTheConfirmation(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "bridge", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"zuul.*.*.denied/x.>"}}}}}}
	s := natstest.StartWith(t, opts)
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("bridge", "pw"), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p, _ := NewPublisher(nc, zerolog.Nop())
	sink, _ := p.Sink("r1", RouteConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var confirms []func(context.Context) (bool, error)
	for _, project := range []string{"o/a", "denied/x", "o/b"} {
		ev := sample(t, "periodic-daily_failure_mixed.json")
		ev.Project = project
		c, _, err := sink.Start(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		confirms = append(confirms, c)
	}
	for i, c := range confirms {
		retry, err := c(ctx)
		if denied := i == 1; denied != (err != nil) || denied && (!errors.Is(err, ErrPermission) || retry) {
			t.Errorf("confirm %d: retry=%v err=%v", i, retry, err)
		}
	}
	if v := testutil.ToFloat64(p.permissionViolations); v != 1 {
		t.Errorf("permission violations counted: %v", v)
	}
}

// TestReconnectBetweenPublishAndFlushIsRetried: the flush succeeds on the new connection,
// yet the publish written before the reconnect is not confirmed.
func TestReconnectBetweenPublishAndFlushIsRetried(t *testing.T) {
	s := natstest.Start(t, false)
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(s.ClientURL(), nats.ReconnectBufSize(-1), nats.MaxReconnects(-1), nats.ReconnectWait(10*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p, _ := NewPublisher(nc, zerolog.Nop())
	sink, _ := p.Sink("r1", RouteConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	confirm, _, err := sink.Start(ctx, sample(t, "periodic-daily_failure_mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatal("no reconnect")
	}
	if retry, err := confirm(ctx); err == nil || !retry {
		t.Fatalf("confirm after a reconnect: retry=%v err=%v; want a retryable error", retry, err)
	}
	// The next publish on the new connection is confirmed normally.
	if _, err := sink.Send(ctx, &zuul.Event{ID: "x", Tenant: "t", Pipeline: "p", Project: "o", Result: "FAILURE"}); err != nil {
		t.Fatalf("send after the reconnect: %v", err)
	}
}
