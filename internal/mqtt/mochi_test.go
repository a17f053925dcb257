package mqtt

import (
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
)

// mochi is the embedded broker of the demo mode: the basic path must work on
// it. Reconnects with the same client id are left to the mosquitto tests:
// mochi handles a session takeover while it is still reading the old
// connection's PUBACKs concurrently, which was seen to redeliver acked
// messages and, once, to deadlock mochi itself (Inflight lock in
// inheritClientSession).
func TestMochiReceiveAndAck(t *testing.T) {
	url := mqtttest.StartMochi(t)
	h := startSub(t, testConfig(t, url))
	h.awaitReady(t)
	mqtttest.Publish(t, url, "zuul/tenant/periodic", payloads("a", "b", "c")...)
	for _, m := range h.expect(t, true, "a", "b", "c") {
		if m.Topic != "zuul/tenant/periodic" {
			t.Errorf("topic %q", m.Topic)
		}
		if err := m.Ack(); err != nil {
			t.Errorf("second Ack must be a no-op, got %v", err)
		}
	}
}
