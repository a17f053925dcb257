package outbox_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// A NATS server before 2.11 drops the pinned priority policy silently. The worker notices
// (the consumer reads back without it) and falls back to one unacknowledged item for the
// whole deployment, so that two replicas never apply two items of one key out of order.
// Needs a nats-server binary older than 2.11 on PATH or in /usr/sbin (Debian 12 ships
// 2.9); skipped without one.
func TestServerWithoutPinningAppliesOneAtATime(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Skip("no nats-server binary")
	}
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(string(out), "nats-server: ")), "v%d.%d", &major, &minor); err != nil ||
		major > 2 || (major == 2 && minor >= 11) {
		t.Skipf("nats-server %s pins consumers; this test needs one before 2.11", strings.TrimSpace(string(out)))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	var nc *nats.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		if nc, err = nats.Connect(url); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithCancel(context.Background())
	box, err := outbox.Open(ctx, nc, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		ev := &zuul.Event{ID: fmt.Sprintf("r%d", i), Outcome: zuul.OutcomeFailure, Project: fmt.Sprintf("p%d", i%2)}
		if _, err := box.Sink("nightly").Send(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var order []string
	inFlight, most := 0, 0
	done := make(chan struct{})
	var log testenv.Buffer
	go func() {
		defer close(done)
		box.Run(ctx, []string{"nightly"}, outbox.WorkerOptions{
			Key: func(_ string, ev *zuul.Event) string { return ev.Project },
			Apply: func(ctx context.Context, _ string, ev *zuul.Event) (bool, error) {
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				order = append(order, ev.ID)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond) // room for a second apply to overlap, if one could
				mu.Lock()
				inFlight--
				mu.Unlock()
				return false, nil
			},
			Ready: func(string) error { return nil },
			Log:   zerolog.New(&log),
		})
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("applied %d of 6", n)
		}
	}
	cancel()
	<-done
	if most != 1 || strings.Join(order, ",") != "r0,r1,r2,r3,r4,r5" {
		t.Errorf("applied %v with up to %d at once; want stream order, one at a time", order, most)
	}
	if !strings.Contains(log.String(), "does not pin consumers") {
		t.Errorf("the fallback was not logged:\n%s", log.String())
	}
}
