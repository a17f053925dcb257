package mqtt

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuf is a log sink the code under test and the test share.
type logBuf = testenv.Buffer

// harness is a started Subscriber whose handler queues the messages.
type harness struct {
	sub  *Subscriber
	msgs chan *Message
	log  *logBuf
}

// testConfig returns a config with fast reconnects for broker url.
func testConfig(t *testing.T, url string) Config {
	return Config{
		URL:        url,
		ClientID:   "test-" + strings.NewReplacer("/", "-").Replace(t.Name()),
		Topic:      "zuul/#",
		BackoffMin: 50 * time.Millisecond,
		BackoffMax: 500 * time.Millisecond,
	}
}

func startSub(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{msgs: make(chan *Message, 100), log: &logBuf{}}
	logger := zerolog.New(h.log).Level(zerolog.DebugLevel)
	sub, err := New(cfg, func(m *Message) { h.msgs <- m }, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.sub = sub
	if err := sub.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.close(t) })
	return h
}

// close closes the subscriber with a limit far above its normal duration (tens of
// milliseconds): a Close that needs the limit returns an error naming what did not
// finish, and one that overruns it fails the test.
func (h *harness) close(t *testing.T) {
	t.Helper()
	const limit, margin = 5 * time.Second, 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	if err := h.sub.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > limit+margin {
		t.Errorf("Close took %v with a limit of %v", d.Round(time.Millisecond), limit)
	}
}

func (h *harness) awaitReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := h.sub.AwaitReady(ctx); err != nil {
		t.Fatalf("AwaitReady: %v\nlog:\n%s", err, h.log)
	}
}

// next returns the next handed-out message or fails after 15s.
func (h *harness) next(t *testing.T) *Message {
	t.Helper()
	select {
	case m := <-h.msgs:
		return m
	case <-time.After(15 * time.Second):
		t.Fatalf("no message within 15s\nlog:\n%s", h.log)
		return nil
	}
}

// expect receives len(want) messages and checks their payloads in order.
func (h *harness) expect(t *testing.T, ack bool, want ...string) []*Message {
	t.Helper()
	var got []*Message
	for i, w := range want {
		m := h.next(t)
		if string(m.Payload) != w {
			t.Fatalf("message %d: payload %q, want %q", i, m.Payload, w)
		}
		if ack {
			if err := m.Ack(); err != nil {
				t.Fatalf("Ack %q: %v", w, err)
			}
		}
		got = append(got, m)
	}
	return got
}

// quiet asserts that no message is handed out for d. It is a negative check
// (nothing can be awaited), not synchronisation.
func (h *harness) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-h.msgs:
		t.Fatalf("unexpected message %q (pid %d)", m.Payload, m.pkt.PacketID)
	case <-time.After(d):
	}
}

// eventually polls cond until it holds or 15s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func payloads(ps ...string) [][]byte {
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = []byte(p)
	}
	return out
}

func testLogger() zerolog.Logger { return zerolog.Nop() }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
