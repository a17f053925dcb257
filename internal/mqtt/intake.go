package mqtt

import "github.com/eclipse/paho.golang/paho"

// onPublish runs on paho's receive goroutine. It queues for the dispatcher, and waits while
// ReceiveMaximum messages are already queued: the broker should never send more unacked
// messages than that, but mosquitto 2.0.11 sends a few more after every PUBACK, so without
// this bound a backlog (a slow sink, a NATS outage) would pile up here without end. Waiting
// here stops paho reading the socket: TCP backpressure, and the broker keeps the rest.
// StopIntake, Close and a lost connection wake the waiter; the waiting message is then
// dropped unacknowledged and comes again.
func (s *Subscriber) onPublish(pr paho.PublishReceived) (bool, error) {
	s.mu.Lock()
	for len(s.queue) >= int(s.cfg.ReceiveMaximum) && !s.stopped && !s.closed {
		s.room.Wait()
	}
	if s.stopped || s.closed {
		// Neither handed out nor acked: the broker delivers it again later.
		s.dropped++
		s.mu.Unlock()
		return true, nil
	}
	m := &Message{
		Topic:     pr.Packet.Topic,
		Payload:   pr.Packet.Payload,
		Duplicate: pr.Packet.Duplicate(),
		sub:       s,
		pkt:       pr.Packet,
		gen:       s.gen,
	}
	if pr.Packet.QoS > 0 {
		s.acks.received(s.gen, pr.Packet.PacketID, pr.Packet.QoS)
	}
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	s.pulse()
	return true, nil
}

func (s *Subscriber) pulse() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dispatch hands queued messages to the handler one at a time, in order.
func (s *Subscriber) dispatch() {
	defer close(s.dispDone)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		var m *Message
		if !s.stopped && len(s.queue) > 0 {
			m = s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.room.Signal()
		}
		s.mu.Unlock()
		if m == nil {
			<-s.wake
			continue
		}
		s.handler(m)
	}
}

func (s *Subscriber) sameGeneration(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return gen == s.gen
}
