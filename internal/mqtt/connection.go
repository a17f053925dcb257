package mqtt

import (
	"context"
	"errors"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// onConnectionUp must not block (autopaho), so the subscription is made in a goroutine.
func (s *Subscriber) onConnectionUp(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	s.mu.Lock()
	s.connected = true
	s.upSince = time.Now()
	gen := s.gen
	closed := s.closed
	if !closed {
		s.workers.Add(1) // under mu: Close waits only after it set closed
	}
	s.mu.Unlock()
	ev := s.log.Info().Bool("session_present", ca.SessionPresent)
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		ev = ev.Uint16("server_receive_maximum", *ca.Properties.ReceiveMaximum)
	}
	ev.Msg("mqtt connected")
	if closed {
		return
	}
	go func() {
		defer s.workers.Done()
		s.subscribe(cm, gen)
	}()
}

// subscribe (re)subscribes on every connection: harmless when the session
// kept the subscription, needed when the broker lost it. A refused SUBACK is
// retried with backoff while this connection lasts (mochi, for one, answers
// 0x91 "packet identifier in use" while it has messages in flight to us).
func (s *Subscriber) subscribe(cm *autopaho.ConnectionManager, gen uint64) {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.closing, s.cfg.ConnectTimeout)
		sa, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{
			Topic: s.cfg.Topic,
			QoS:   1,
			// Retained messages only when the subscription is new, not at
			// every reconnect (each would be handled again).
			RetainHandling: 1,
		}}})
		cancel()
		if s.closing.Err() != nil {
			return // Close abandoned the subscription
		}
		if err == nil && sa != nil && len(sa.Reasons) == 1 {
			if sa.Reasons[0] == 0 {
				s.log.Warn().Str("topic", s.cfg.Topic).Msg("mqtt broker granted QoS 0 only: messages can be lost while the bridge is down")
			}
			s.setReady(gen)
			return
		}
		ev := s.log.Error().Str("topic", s.cfg.Topic).Int("attempt", attempt)
		if sa != nil && len(sa.Reasons) > 0 {
			ev = ev.Uint8("reason_code", sa.Reasons[0]).Str("reason", reasonText(sa.Reasons[0]))
		}
		if err != nil {
			ev = ev.Err(err)
		}
		ev.Msg("mqtt subscribe failed, retrying")
		t := time.NewTimer(s.backoff(attempt))
		select {
		case <-t.C:
		case <-s.closedCh:
			t.Stop()
			return
		}
		if !s.sameGeneration(gen) {
			return // the connection is gone; the next one subscribes again
		}
	}
}

func (s *Subscriber) setReady(gen uint64) {
	s.mu.Lock()
	if gen != s.gen || !s.connected || s.subscribed {
		s.mu.Unlock()
		return
	}
	s.subscribed = true
	close(s.readyCh)
	s.mu.Unlock()
	s.log.Info().Str("topic", s.cfg.Topic).Msg("mqtt subscribed")
	if s.cfg.OnConnectionChange != nil {
		s.cfg.OnConnectionChange(true)
	}
}

// onConnectionDown runs after paho has fully shut the old connection down, so
// every message of that connection has already passed onPublish.
func (s *Subscriber) onConnectionDown() bool {
	s.mu.Lock()
	wasReady := s.connected && s.subscribed
	if s.subscribed {
		s.readyCh = make(chan struct{})
	}
	s.gen++
	s.connected, s.subscribed = false, false
	if time.Since(s.upSince) < s.cfg.BackoffMax {
		s.flaps++
	} else {
		s.flaps = 0
	}
	// Not yet handed out and no longer ackable: the broker sends them again.
	clear(s.queue)
	s.queue = s.queue[:0]
	s.room.Broadcast()
	s.acks.connectionLost(s.gen)
	closed := s.closed
	s.mu.Unlock()
	s.log.Warn().Msg("mqtt connection lost, reconnecting")
	if wasReady && s.cfg.OnConnectionChange != nil {
		s.cfg.OnConnectionChange(false)
	}
	return !closed
}

func (s *Subscriber) onConnectError(err error) {
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) {
		ev := s.log.Error().Uint8("reason_code", ce.ReasonCode).Str("reason", reasonText(ce.ReasonCode))
		if ce.Reason != "" {
			ev = ev.Str("server_reason", ce.Reason)
		}
		ev.Msg("mqtt broker refused the connection, retrying")
		return
	}
	// The error text names the URL; Validate rejected URLs with credentials.
	s.log.Error().Err(err).Msg("mqtt connect failed, retrying")
}

// reconnectDelay is autopaho's ReconnectBackoff. autopaho restarts the
// attempt count at 0 (reconnect at once) after every lost connection, so a
// connection that keeps dying right after it came up (e.g. a second replica
// with the same client id taking the session over, reason 0x8E) would
// reconnect in a tight loop. Connections that lived shorter than BackoffMax
// therefore carry their count into the next delays.
func (s *Subscriber) reconnectDelay(attempt int) time.Duration {
	s.mu.Lock()
	flaps := s.flaps
	s.mu.Unlock()
	return s.backoff(attempt + flaps)
}
