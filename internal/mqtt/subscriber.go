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

	"github.com/SovereignCloudStack/zuul-bridge/internal/secret"
)

// Handler receives the messages, in receive order, from one goroutine. It may
// block: while it does, no further message is handed out, and once
// ReceiveMaximum messages are unacknowledged the broker stops sending.
type Handler func(m *Message)

// Subscriber is one persistent MQTT v5 subscription.
type Subscriber struct {
	cfg     Config
	handler Handler
	log     zerolog.Logger
	url     *url.URL
	tls     *tls.Config
	acks    *ackMirror
	session mirrorSession // paho's session state, shared by every connection

	mu         sync.Mutex
	started    bool
	closed     bool
	stopped    bool   // StopIntake was called
	gen        uint64 // connection generation, incremented when a connection is lost
	connected  bool
	subscribed bool
	readyCh    chan struct{} // closed while Ready
	queue      []*Message    // received, not yet handed out; at most ReceiveMaximum
	room       *sync.Cond    // on mu: signalled when the queue shrinks or intake ends
	dropped    int           // messages that arrived after StopIntake (for tests)
	upSince    time.Time     // when the current connection came up
	flaps      int           // consecutive connections that died young
	backoff    func(attempt int) time.Duration

	wake     chan struct{} // pulsed when queue or state changes
	closedCh chan struct{} // closed by Close
	cm       *autopaho.ConnectionManager
	cancel   context.CancelFunc
	workers  sync.WaitGroup // subscribe goroutines; Add only under mu while !closed
	// closing ends at Close: a SUBSCRIBE still waiting for its SUBACK is abandoned
	// then (paho keeps it pending across the disconnect, for up to ConnectTimeout).
	closing    context.Context
	endClosing context.CancelFunc
	dispDone   chan struct{} // closed when the dispatcher returns

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
		backoff:   backoff(cfg.BackoffMin, cfg.BackoffMax),
	}
	s.room = sync.NewCond(&s.mu)
	s.closing, s.endClosing = context.WithCancel(context.Background())
	inner := state.NewInMemory()
	s.acks.session, s.session = inner, mirrorSession{inner, s.acks}
	if tlsSchemes[u.Scheme] {
		tc, err := secret.TLSConfig(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
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
		if _, err := secret.ReadFile(cfg.PasswordFile); err != nil {
			return nil, fmt.Errorf("mqtt: PasswordFile: %w", err)
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
		Stringer("session_expiry", s.cfg.SessionExpiry).Msg("mqtt subscriber starting")
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
		ReconnectBackoff:              s.reconnectDelay,
		ConnectTimeout:                s.cfg.ConnectTimeout,
		AttemptConnection:             s.dialer(s.url),
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
			// carries the guarantee); the wrapper withholds paho's automatic ack,
			// ackMirror writes the PUBACK once the message is settled.
			Session: s.session,
			// Set here, not with AddOnPublishReceived, which a reconnect forgets
			// (paho issue #326); messages of a resumed session can arrive before
			// OnConnectionUp runs.
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){s.onPublish},
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
		pw, err := secret.ReadFile(s.cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("PasswordFile: %w", err)
		}
		cp.Password, cp.PasswordFlag = []byte(pw), len(pw) > 0
	}
	return cp, nil
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
	s.room.Broadcast()
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
	s.room.Broadcast()
	started := s.started
	close(s.closedCh)
	s.endClosing()
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
	if err := s.cm.Disconnect(ctx); err != nil {
		errs = append(errs, fmt.Errorf("mqtt: disconnect: %w", err))
	}
	s.cancel()
	// No worker starts any more (closed is set); those running end soon
	// (closing is cancelled), but not later than ctx allows.
	workersDone := make(chan struct{})
	go func() { s.workers.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("mqtt: subscribe still running at close: %w", ctx.Err()))
	}
	s.log.Info().Msg("mqtt subscriber closed")
	return errors.Join(errs...)
}
