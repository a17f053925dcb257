package mqtt

import (
	"errors"
	"sync/atomic"

	"github.com/eclipse/paho.golang/paho"
)

// ErrStaleAck is returned by Message.Ack when the connection the message came
// on is gone. Nothing is lost: the broker delivers the message again on the
// new connection, where it must be handled (and acknowledged) once more.
var ErrStaleAck = errors.New("mqtt: ack for a message of a lost connection; the broker redelivers it")

// Message is one PUBLISH handed to the Handler.
type Message struct {
	Topic     string
	Payload   []byte
	Duplicate bool // the broker may have sent it before (redelivery)

	sub   *Subscriber
	pkt   *paho.Publish // its packet id and QoS
	gen   uint64        // connection generation it arrived on
	acked atomic.Bool
}

// Ack acknowledges the message to the broker (PUBACK). It is safe from any
// goroutine and a second call is a no-op. Acks go out in receive order: the PUBACK is
// written at once if every earlier message is acknowledged too, else with the last of
// them. After a reconnect it returns ErrStaleAck and does nothing.
func (m *Message) Ack() error {
	if m.acked.Swap(true) {
		return nil
	}
	if m.pkt.QoS == 0 {
		return nil // a QoS 0 message has nothing to acknowledge
	}
	// Never hand an old packet to the new connection (paho issue #160): the
	// packet id may already name another message there. ack checks the generation.
	return m.sub.acks.ack(m.gen, m.pkt.PacketID)
}
