package mqtt

import (
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
)

// mochi is the embedded broker of the demo mode: the basic path must work on it.
func TestMochiReceiveAndAck(t *testing.T) {
	url := mqtttest.StartMochi(t)
	cfg := testConfig(t, url)

	h := startSub(t, cfg)
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
	h.close(t)

	// Same client id again: the acked messages must not come back.
	h2 := startSub(t, cfg)
	h2.awaitReady(t)
	mqtttest.Publish(t, url, "zuul/x", []byte("marker"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.log.String())
		}
	})
	h2.expect(t, true, "marker")
}
