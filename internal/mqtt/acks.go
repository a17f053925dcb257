package mqtt

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session"
)

// ackMirror keeps the received QoS>0 packets of the current connection in receive order
// and writes each PUBACK as soon as that packet and every packet before it have been
// acknowledged by the application: MQTT wants PUBACKs in receive order, and the broker
// counts every unacknowledged packet against its in-flight window (Receive Maximum).
//
// paho's manual acknowledgement would keep the same order but write the acknowledged
// prefix on a ticker (SendAcksInterval): every ack then waits up to one tick while it
// holds a window slot, and the ticker wakes the process even when no message comes. Here
// the PUBACK is written at once by the goroutine that acknowledges, and paho's own
// automatic acknowledgement, which it makes when the receive handler returns, is withheld
// (mirrorSession.Ack). PUBACKs that fall due together are written in one system call.
type ackMirror struct {
	mu      sync.Mutex
	gen     uint64
	down    bool // between the session's ConnectionLost and the next ConAckReceived
	order   []mirrored
	session session.SessionManager // writes a QoS 2 acknowledgement (PUBREC), which it records
	conn    io.Writer              // the current connection, as paho gave it to the session
	buf     bytes.Buffer           // the PUBACKs due, written to conn at once
}

type mirrored struct {
	id    uint16
	qos   byte
	acked bool
}

func newAckMirror() *ackMirror { return &ackMirror{} }

// received records a QoS>0 packet of connection gen, in receive order.
func (a *ackMirror) received(gen uint64, id uint16, qos byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen == a.gen {
		a.order = append(a.order, mirrored{id: id, qos: qos})
	}
}

// ack records that the application acknowledged packet id of connection gen and writes
// every PUBACK that is now due. It returns ErrStaleAck when the connection is gone (the
// broker redelivers), and a write error when the connection broke while writing.
// Writing under the lock keeps the order, and a PUBACK of an old connection never reaches
// a new one: connectionLost takes the same lock before the next connection is made.
func (a *ackMirror) ack(gen uint64, id uint16) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen != a.gen || a.down {
		return ErrStaleAck
	}
	found := false
	for i := range a.order {
		if a.order[i].id == id && !a.order[i].acked {
			a.order[i].acked, found = true, true
			break
		}
	}
	if !found {
		return ErrStaleAck
	}
	n := 0
	for n < len(a.order) && a.order[n].acked {
		n++
	}
	if n == 0 {
		return nil
	}
	err := a.write(a.order[:n])
	a.order = a.order[n:]
	return err
}

// write sends the acknowledgements of due, in order: the PUBACKs of QoS 1 packets
// together in one write, a QoS 2 packet's PUBREC through paho's session, which records it.
// The connection is locked while writing when it is a sync.Locker, as paho locks it.
func (a *ackMirror) write(due []mirrored) error {
	var err error
	flush := func() {
		if a.buf.Len() == 0 {
			return
		}
		if l, ok := a.conn.(sync.Locker); ok {
			l.Lock()
			defer l.Unlock()
		}
		if _, werr := a.conn.Write(a.buf.Bytes()); werr != nil && err == nil {
			err = fmt.Errorf("mqtt: PUBACK: %w", werr)
		}
		a.buf.Reset()
	}
	for _, m := range due {
		if m.qos == 1 && a.conn != nil {
			pa := packets.Puback{PacketID: m.id, Properties: &packets.Properties{}}
			if _, werr := pa.WriteTo(&a.buf); werr != nil && err == nil {
				err = werr
			}
			continue
		}
		flush()
		p := &packets.Publish{QoS: m.qos, PacketID: m.id}
		if werr := a.session.Ack(p); werr != nil && err == nil {
			err = fmt.Errorf("mqtt: acknowledgement of packet %d: %w", p.PacketID, werr)
		}
	}
	flush()
	return err
}

// connectionLost starts a new generation: acks of the old one can no longer be sent.
func (a *ackMirror) connectionLost(newGen uint64) {
	a.mu.Lock()
	a.gen = newGen
	a.order = nil
	a.mu.Unlock()
}

// sessionDown and sessionUp follow paho's session: once a connection is lost (or closed
// by Close) no ack of it is written, even before onConnectionDown starts a new generation.
func (a *ackMirror) sessionDown() {
	a.mu.Lock()
	a.down = true
	a.conn = nil
	a.order = nil
	a.mu.Unlock()
}

func (a *ackMirror) sessionUp(conn io.Writer) {
	a.mu.Lock()
	a.down = false
	a.conn = conn
	a.mu.Unlock()
}

// mirrorSession wraps paho's session state. paho calls Ack when the receive handler has
// returned; for a QoS>0 message that is too early (it is only queued), so the PUBACK is
// left to ackMirror.ack, which calls the wrapped session's Ack once the message is settled.
type mirrorSession struct {
	session.SessionManager
	acks *ackMirror
}

func (s mirrorSession) Ack(pb *packets.Publish) error {
	if pb.QoS == 0 {
		return s.SessionManager.Ack(pb)
	}
	return nil
}

func (s mirrorSession) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	err := s.SessionManager.ConAckReceived(w, cp, ca)
	if err == nil {
		s.acks.sessionUp(w)
	}
	return err
}

func (s mirrorSession) ConnectionLost(dp *packets.Disconnect) error {
	s.acks.sessionDown()
	return s.SessionManager.ConnectionLost(dp)
}
