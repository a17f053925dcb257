package mqtt

import "github.com/eclipse/paho.golang/paho"

// onPublish runs on paho's receive goroutine. It only queues: blocking here
// would also block paho's shutdown of a dead connection. The queue stays
// small without a bound of its own: the broker sends at most ReceiveMaximum
// unacknowledged messages per connection, and onConnectionDown empties it.
func (s *Subscriber) onPublish(pr paho.PublishReceived) (bool, error) {
	s.mu.Lock()
	if s.stopped {
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
		client:    pr.Client,
		pkt:       pr.Packet,
		gen:       s.gen,
	}
	if pr.Packet.QoS > 0 {
		s.acks.received(s.gen, pr.Packet.PacketID)
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
