package mqtt

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// pubacks parses the packet ids of the PUBACKs written to buf.
func pubacks(t *testing.T, buf *bytes.Buffer) []uint16 {
	t.Helper()
	var ids []uint16
	for buf.Len() > 0 {
		cp, err := packets.ReadPacket(buf)
		if err != nil {
			t.Fatalf("reading what was written: %v", err)
		}
		pa, ok := cp.Content.(*packets.Puback)
		if !ok {
			t.Fatalf("wrote a %T, want PUBACKs only", cp.Content)
		}
		ids = append(ids, pa.PacketID)
	}
	return ids
}

// countingWriter is a connection that counts its writes.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// Each PUBACK is written by the Ack that makes it due, without waiting for a tick, and
// always in receive order: an ack behind an unacknowledged message waits for it, and the
// PUBACKs that fall due together go out in one write.
// paho's own acknowledgement when the handler returns writes nothing. Once the session
// lost its connection nothing more is written and Ack reports the message stale.
func TestAcksWrittenAtOnceInReceiveOrder(t *testing.T) {
	inner := state.NewInMemory()
	a := newAckMirror()
	a.session = inner
	sess := mirrorSession{inner, a}
	var conn countingWriter
	wire := &conn.Buffer
	if err := sess.ConAckReceived(&conn, &packets.Connect{}, &packets.Connack{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint16{7, 8, 9} {
		a.received(0, id, 1)
		// paho's automatic acknowledgement, when the receive handler returned
		if err := sess.Ack(&packets.Publish{QoS: 1, PacketID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if got := pubacks(t, wire); len(got) != 0 {
		t.Fatalf("PUBACKs %v written before the application acknowledged", got)
	}
	if err := a.ack(0, 8); err != nil {
		t.Fatal(err)
	}
	if got := pubacks(t, wire); len(got) != 0 {
		t.Fatalf("PUBACK %v written before the earlier message 7 was acknowledged", got)
	}
	if err := a.ack(0, 7); err != nil {
		t.Fatal(err)
	}
	if got := pubacks(t, wire); !slices.Equal(got, []uint16{7, 8}) {
		t.Fatalf("PUBACKs %v, want 7 then 8 at once", got)
	}
	if conn.writes != 1 {
		t.Errorf("PUBACKs 7 and 8 took %d writes, want 1", conn.writes)
	}
	if err := a.ack(0, 7); !errors.Is(err, ErrStaleAck) {
		t.Errorf("second ack of 7: %v, want ErrStaleAck (nothing to write)", err)
	}

	if err := sess.ConnectionLost(nil); err != nil {
		t.Fatal(err)
	}
	if err := a.ack(0, 9); !errors.Is(err, ErrStaleAck) {
		t.Errorf("ack after the connection was lost: %v, want ErrStaleAck", err)
	}
	if got := pubacks(t, wire); len(got) != 0 {
		t.Errorf("PUBACKs %v written after the connection was lost", got)
	}
}
