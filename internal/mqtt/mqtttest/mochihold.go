package mqtttest

import (
	"bytes"
	"sync"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// StartMochiHoldingSubscribe runs StartMochi's broker, except that it never
// answers a SUBSCRIBE: the client's SUBSCRIBE waits for a SUBACK that does
// not come (as with a broker that is slow or stuck). held receives once per
// SUBSCRIBE the broker has read and holds. The held SUBSCRIBEs are let go at
// Cleanup, before the broker closes.
func StartMochiHoldingSubscribe(t testing.TB) (url string, held <-chan struct{}) {
	t.Helper()
	h := &holdSubscribe{held: make(chan struct{}, 100), release: make(chan struct{})}
	url = startMochi(t, h)
	// Registered after startMochi's Cleanup, so it runs before the broker closes.
	t.Cleanup(h.releaseAll)
	return url, h.held
}

type holdSubscribe struct {
	mochi.HookBase
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *holdSubscribe) ID() string { return "hold-subscribe" }

func (h *holdSubscribe) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnSubscribe}, []byte{b})
}

// OnSubscribe blocks the client's read loop, so the SUBACK is not sent.
func (h *holdSubscribe) OnSubscribe(_ *mochi.Client, pk packets.Packet) packets.Packet {
	select {
	case h.held <- struct{}{}:
	default:
	}
	<-h.release
	return pk
}

func (h *holdSubscribe) releaseAll() { h.once.Do(func() { close(h.release) }) }
