package mqtt

import (
	"context"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session"
)

// ackMirror follows paho's ack queue so that Close can tell when every ack
// that was given has been written to the broker. paho keeps the received
// QoS>0 packets in receive order and, on a ticker, writes the acknowledged
// prefix (SendAcksInterval); a DISCONNECT right after Ack would otherwise
// lose the ack (paho issue #327). The mirror records the same order on
// receipt and learns of each written ack through the session's Ack call.
type ackMirror struct {
	mu      sync.Mutex
	gen     uint64
	order   []mirrored
	written chan struct{} // pulsed when an ack was written or the connection dropped
}

type mirrored struct {
	id    uint16
	acked bool
}

func newAckMirror() *ackMirror { return &ackMirror{written: make(chan struct{}, 1)} }

func (a *ackMirror) pulse() {
	select {
	case a.written <- struct{}{}:
	default:
	}
}

// received records a QoS>0 packet of connection gen, in receive order.
func (a *ackMirror) received(gen uint64, id uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen == a.gen {
		a.order = append(a.order, mirrored{id: id})
	}
}

// markAcked records that the handler acknowledged packet id.
func (a *ackMirror) markAcked(gen uint64, id uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen != a.gen {
		return
	}
	for i := range a.order {
		if a.order[i].id == id {
			a.order[i].acked = true
			return
		}
	}
}

// writtenAck drops packet id: its PUBACK went out. It may come before
// markAcked has run (paho's ticker can be quicker); then markAcked finds
// nothing, which is right.
func (a *ackMirror) writtenAck(id uint16) {
	a.mu.Lock()
	for i := range a.order {
		if a.order[i].id == id {
			a.order = append(a.order[:i], a.order[i+1:]...)
			break
		}
	}
	a.mu.Unlock()
	a.pulse()
}

// connectionLost starts a new generation: acks of the old one can no longer be sent.
func (a *ackMirror) connectionLost(newGen uint64) {
	a.mu.Lock()
	a.gen = newGen
	a.order = nil
	a.mu.Unlock()
	a.pulse()
}

// pending reports whether some given ack is still waiting to be written, i.e.
// whether the head of the queue is acknowledged. An acked message behind an
// unacked one is not pending: paho will not send it before the earlier one.
func (a *ackMirror) pending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.order) > 0 && a.order[0].acked
}

// flush waits until no given ack is pending, the connection dropped, ctx
// ends or limit passes (a safety net should paho stop flushing).
func (a *ackMirror) flush(ctx context.Context, limit time.Duration) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for a.pending() {
		select {
		case <-a.written:
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		}
	}
}

// mirrorSession wraps paho's session state to see each PUBACK as it is written.
type mirrorSession struct {
	session.SessionManager
	acks *ackMirror
}

func (s mirrorSession) Ack(pb *packets.Publish) error {
	err := s.SessionManager.Ack(pb)
	s.acks.writtenAck(pb.PacketID)
	return err
}
