package mqtt

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/eclipse/paho.golang/paho"
)

// ErrStaleAck is returned by Message.Ack when the connection the message came
// on is gone. Nothing is lost: the broker delivers the message again on the
// new connection, where it must be handled (and acknowledged) once more.
var ErrStaleAck = errors.New("mqtt: ack for a message of a lost connection; the broker redelivers it")

// acker is the part of *paho.Client a Message needs.
type acker interface {
	Ack(*paho.Publish) error
}

// Message is one PUBLISH handed to the Handler.
type Message struct {
	Topic     string
	Payload   []byte
	Duplicate bool // the broker may have sent it before (redelivery)

	sub    *Subscriber
	client acker         // the connection it arrived on
	pkt    *paho.Publish // needed by paho to find the ack slot
	gen    uint64        // connection generation it arrived on
	acked  atomic.Bool
}

// Ack acknowledges the message to the broker (PUBACK). It is safe from any
// goroutine and a second call is a no-op. paho sends acks in receive order on
// a short ticker, so an ack waits for all earlier messages to be acked too.
// After a reconnect it returns ErrStaleAck and does nothing.
func (m *Message) Ack() error {
	if m.acked.Swap(true) {
		return nil
	}
	if m.pkt.QoS == 0 {
		return nil // a QoS 0 message has nothing to acknowledge
	}
	// Never hand an old packet to the new connection (paho issue #160): the
	// packet id may already name another message there.
	if !m.sub.sameGeneration(m.gen) {
		return ErrStaleAck
	}
	if err := m.client.Ack(m.pkt); err != nil {
		if errors.Is(err, paho.ErrPacketNotFound) {
			return ErrStaleAck
		}
		return fmt.Errorf("mqtt: ack of packet %d on %q: %w", m.pkt.PacketID, m.Topic, err)
	}
	m.sub.acks.markAcked(m.gen, m.pkt.PacketID)
	return nil
}
