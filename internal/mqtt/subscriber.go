package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	paholog "github.com/eclipse/paho.golang/paho/log"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/rs/zerolog"
)

// Handler receives the messages, in receive order, from one goroutine. It may
// block: while it does, no further message is handed out, and once
// ReceiveMaximum messages are unacknowledged the broker stops sending.
type Handler func(m *Message)

// sendAcksInterval is how often paho writes the acknowledged prefix. Short,
// because an ack waiting here holds the broker's in-flight slot.
const sendAcksInterval = 20 * time.Millisecond

// Subscriber is one persistent MQTT v5 subscription.
type Subscriber struct {
	cfg     Config
	handler Handler
	log     zerolog.Logger
	url     *url.URL
	tls     *tls.Config
	acks    *ackMirror

	mu         sync.Mutex
	started    bool
	closed     bool
	stopped    bool   // StopIntake was called
	gen        uint64 // connection generation, incremented when a connection is lost
	connected  bool
	subscribed bool
	readyCh    chan struct{} // closed while Ready
	queue      []*Message    // received, not yet handed out
	dropped    int           // messages that arrived after StopIntake (for tests)

	wake     chan struct{} // pulsed when queue or state changes
	closedCh chan struct{} // closed by Close
	cm       *autopaho.ConnectionManager
	cancel   context.CancelFunc
	workers  sync.WaitGroup // subscribe goroutines
	dispDone chan struct{}  // closed when the dispatcher returns

	pahoDebug paholog.Logger // paho's debug output, only at trace level
}

// New validates cfg, loads the TLS files and checks that a PasswordFile can
// be read. It does not touch the network.
func New(cfg Config, h Handler, log zerolog.Logger) (*Subscriber, error) {
	if h == nil {
		return nil, errors.New("mqtt: handler is nil")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mqtt: invalid config: %w", err)
	}
	u, _ := parseURL(cfg.URL) // valid: Validate passed
	s := &Subscriber{
		cfg:       cfg,
		handler:   h,
		log:       log.With().Str("component", "mqtt").Str("url", u.String()).Str("client_id", cfg.ClientID).Logger(),
		url:       u,
		acks:      newAckMirror(),
		readyCh:   make(chan struct{}),
		wake:      make(chan struct{}, 1),
		closedCh:  make(chan struct{}),
		dispDone:  make(chan struct{}),
		pahoDebug: paholog.NOOPLogger{},
	}
	if tlsSchemes[u.Scheme] {
		tc, err := loadTLS(cfg)
		if err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
		s.tls = tc
	}
	if log.Trace().Enabled() {
		// paho's own debug output, very chatty: only at trace level.
		s.pahoDebug = pahoLogger{s.log, zerolog.TraceLevel, "paho"}
	}
	if cfg.PasswordFile != "" {
		if _, err := readPasswordFile(cfg.PasswordFile); err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
	}
	return s, nil
}

// Start begins connecting and returns at once. From then on the subscriber
// reconnects and resubscribes by itself until Close; connection errors are
// logged and retried with backoff, never returned. ctx only carries values:
// cancelling it does not stop the subscriber, so that acks given during a
// shutdown grace period can still be sent (call Close for that).
func (s *Subscriber) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("mqtt: Start called twice or after Close")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cm, err := autopaho.NewConnection(runCtx, s.clientConfig())
	if err != nil {
		cancel()
		return fmt.Errorf("mqtt: %w", err)
	}
	s.started, s.cm, s.cancel = true, cm, cancel
	go s.dispatch()
	s.log.Info().Str("topic", s.cfg.Topic).Uint16("receive_maximum", s.cfg.ReceiveMaximum).
		Dur("session_expiry", s.cfg.SessionExpiry).Msg("mqtt subscriber starting")
	return nil
}

func (s *Subscriber) clientConfig() autopaho.ClientConfig {
	expiry := uint32(s.cfg.SessionExpiry / time.Second)
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{s.url},
		TlsCfg:                        s.tls,
		KeepAlive:                     uint16(s.cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: false, // resume the broker's session: it holds what we missed
		SessionExpiryInterval:         expiry,
		ReconnectBackoff:              backoff(s.cfg.BackoffMin, s.cfg.BackoffMax),
		ConnectTimeout:                s.cfg.ConnectTimeout,
		ConnectUsername:               s.cfg.Username,
		ConnectPassword:               s.cfg.Password,
		ConnectPacketBuilder:          s.buildConnect,
		OnConnectionUp:                s.onConnectionUp,
		OnConnectionDown:              s.onConnectionDown,
		OnConnectError:                s.onConnectError,
		Debug:                         s.pahoDebug,
		PahoDebug:                     s.pahoDebug,
		Errors:                        pahoLogger{s.log, zerolog.WarnLevel, "autopaho"},
		PahoErrors:                    pahoLogger{s.log, zerolog.WarnLevel, "paho"},
		ClientConfig: paho.ClientConfig{
			ClientID: s.cfg.ClientID,
			// Inbound QoS 1 needs no client-side store (the broker's session
			// carries the guarantee); the wrapper only watches acks go out.
			Session: mirrorSession{SessionManager: state.NewInMemory(), acks: s.acks},
			// Set here, not with AddOnPublishReceived, which a reconnect forgets
			// (paho issue #326); messages of a resumed session can arrive before
			// OnConnectionUp runs.
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){s.onPublish},
			EnableManualAcknowledgment: true,
			SendAcksInterval:           sendAcksInterval,
			OnClientError: func(err error) {
				s.log.Warn().Err(err).Msg("mqtt connection error")
			},
			OnServerDisconnect: func(d *paho.Disconnect) {
				ev := s.log.Warn().Uint8("reason_code", d.ReasonCode).Str("reason", reasonText(d.ReasonCode))
				if d.Properties != nil && d.Properties.ReasonString != "" {
					ev = ev.Str("server_reason", d.Properties.ReasonString)
				}
				ev.Msg("mqtt broker closed the connection")
			},
		},
	}
}

// buildConnect adds Receive Maximum (autopaho has no field for it) and the
// password from PasswordFile, read afresh at every connect.
func (s *Subscriber) buildConnect(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
	if cp.Properties == nil {
		cp.Properties = &paho.ConnectProperties{}
	}
	rm := s.cfg.ReceiveMaximum
	cp.Properties.ReceiveMaximum = &rm
	if s.cfg.PasswordFile != "" {
		pw, err := readPasswordFile(s.cfg.PasswordFile)
		if err != nil {
			return nil, err
		}
		cp.Password, cp.PasswordFlag = pw, len(pw) > 0
	}
	return cp, nil
}

// onPublish runs on paho's receive goroutine. It only queues: blocking here
// would also block paho's shutdown of a dead connection.
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

// onConnectionUp must not block (autopaho), so the subscription is made in a goroutine.
func (s *Subscriber) onConnectionUp(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	s.mu.Lock()
	s.connected = true
	gen := s.gen
	s.mu.Unlock()
	ev := s.log.Info().Bool("session_present", ca.SessionPresent)
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		ev = ev.Uint16("server_receive_maximum", *ca.Properties.ReceiveMaximum)
	}
	ev.Msg("mqtt connected")
	s.workers.Add(1)
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
	bo := backoff(s.cfg.BackoffMin, s.cfg.BackoffMax)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnectTimeout)
		sa, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{
			Topic: s.cfg.Topic,
			QoS:   1,
			// Retained messages only when the subscription is new, not at
			// every reconnect (each would be handled again).
			RetainHandling: 1,
		}}})
		cancel()
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
		t := time.NewTimer(bo(attempt))
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
	// Not yet handed out and no longer ackable: the broker sends them again.
	clear(s.queue)
	s.queue = s.queue[:0]
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

// Ready reports whether the connection is up and the subscription granted.
func (s *Subscriber) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected && s.subscribed
}

// AwaitReady waits until Ready, ctx ends or the subscriber is closed.
func (s *Subscriber) AwaitReady(ctx context.Context) error {
	for {
		s.mu.Lock()
		ready, ch := s.connected && s.subscribed, s.readyCh
		s.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closedCh:
			return errors.New("mqtt: subscriber closed")
		}
	}
}

// StopIntake stops handing out messages. A handler call already running
// finishes, and its Ack still works until Close; messages that arrive from
// now on are neither handed out nor acknowledged, so the broker keeps them.
func (s *Subscriber) StopIntake() {
	s.mu.Lock()
	first := !s.stopped
	s.stopped = true
	clear(s.queue)
	s.queue = s.queue[:0]
	s.mu.Unlock()
	if first {
		s.log.Info().Msg("mqtt intake stopped")
	}
}

// Close stops intake, waits for a running handler call to return, makes sure
// the acks already given reach the broker, then disconnects and waits for
// the connection manager to finish. ctx bounds the whole of it.
func (s *Subscriber) Close(ctx context.Context) error {
	s.StopIntake()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	close(s.closedCh)
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.pulse()

	var errs []error
	select {
	case <-s.dispDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("mqtt: handler still running at close: %w", ctx.Err()))
	}
	// The limit only guards against paho no longer flushing; normally the
	// next tick (sendAcksInterval) writes what is pending.
	s.acks.flush(ctx, 100*sendAcksInterval)
	if err := s.cm.Disconnect(ctx); err != nil {
		errs = append(errs, fmt.Errorf("mqtt: disconnect: %w", err))
	}
	s.cancel()
	s.workers.Wait()
	s.log.Info().Msg("mqtt subscriber closed")
	return errors.Join(errs...)
}
