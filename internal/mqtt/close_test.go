package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
)

// A SUBSCRIBE the broker never answers does not hold Close past its deadline:
// paho keeps the SUBSCRIBE of a persistent session pending after the
// disconnect, so a wait for its SUBACK would otherwise last ConnectTimeout.
func TestCloseHonoursDeadlineWhileSubscribeAwaitsSuback(t *testing.T) {
	url, held := mqtttest.StartMochiHoldingSubscribe(t)
	cfg := testConfig(t, url)
	cfg.ConnectTimeout = time.Minute // how long the SUBACK wait would hold Close
	h := startSub(t, cfg)
	select {
	case <-held:
	case <-time.After(15 * time.Second):
		t.Fatalf("the broker did not receive a SUBSCRIBE within 15s\nlog:\n%s", h.log)
	}
	if h.sub.Ready() {
		t.Fatal("Ready without a SUBACK")
	}

	const deadline = 500 * time.Millisecond
	// Generous against a slow machine, far below ConnectTimeout: what is
	// measured is whether Close keeps to its deadline, not how fast it is.
	const margin = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- h.sub.Close(ctx) }()
	select {
	case err := <-done:
		t.Logf("Close returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
		// nil also says that the subscribe goroutine has ended: Close waits for it.
		if err != nil {
			t.Errorf("Close: %v (nothing was left to finish: the SUBSCRIBE is abandoned)", err)
		}
	case <-time.After(deadline + margin):
		t.Fatalf("Close with a %v deadline still running after %v (a SUBSCRIBE awaiting its SUBACK holds it)\nlog:\n%s",
			deadline, deadline+margin, h.log)
	}
}
