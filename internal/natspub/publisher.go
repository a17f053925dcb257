// Package natspub publishes kept reports to NATS: one subject per route (escaped so that a
// value can never add a level or a wildcard), a versioned JSON body, and Nats-Msg-Id for
// JetStream de-duplication. When a JetStream stream covers the subject the publish waits
// for the stream's acknowledgement; otherwise it is a core publish confirmed by a flush.
package natspub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// RouteConfig is the `nats:` block of a route in the rules file.
type RouteConfig struct {
	// Subject template, e.g. "zuul.{tenant}.{pipeline}.{project}.{result}".
	Subject string `yaml:"subject"`
	// IncludeRaw adds the Zuul payload as received under "raw" in the body.
	IncludeRaw bool `yaml:"include_raw"`
}

// DefaultSubject is used when a route's nats block names no subject.
const DefaultSubject = "zuul.{tenant}.{pipeline}.{project}.{result}"

// Validate checks the block; the error names the key.
func (c *RouteConfig) Validate() error {
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if _, err := CompileSubject(c.Subject); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	return nil
}

// Publisher owns the NATS connection's publishing side and the cache of which subjects a
// JetStream stream covers.
type Publisher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log zerolog.Logger
	now func() time.Time

	mu      sync.Mutex
	streams map[string]streamEntry

	// Core publishes are confirmed by a flush round trip; one flush confirms every publish
	// before it, so a batch of reports costs one round trip (flushThrough).
	pubMu   sync.Mutex
	pubSeq  atomic.Uint64 // core publishes handed to the connection
	flushMu sync.Mutex
	flushed uint64 // every publish up to this sequence is confirmed

	confirm              *confirmState // permission violations and reconnects (confirm.go)
	permissionViolations prometheus.Counter
}

type streamEntry struct {
	stream string // "" = no stream covers the subject: core publish
	until  time.Time
}

// streamTTL bounds how long a subject's stream lookup is trusted: a stream created or
// deleted at run time is noticed within this time.
const streamTTL = 30 * time.Second

// lookupTimeout bounds the stream look-up; the JetStream API answers in microseconds.
const lookupTimeout = 2 * time.Second

// publishTimeout bounds one publish when the caller set no deadline.
const publishTimeout = 10 * time.Second

// NewPublisher wraps a connection. Connect it with nats.ReconnectBufSize(-1): a publish
// while disconnected must fail, not sit in a buffer that a crash would lose.
func NewPublisher(nc *nats.Conn, log zerolog.Logger) (*Publisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	p := &Publisher{nc: nc, js: js, log: log, now: time.Now, streams: map[string]streamEntry{}, confirm: newConfirmState(),
		permissionViolations: prometheus.NewCounter(prometheus.CounterOpts{Name: "zuul_bridge_nats_permission_violations_total",
			Help: "Publishes the NATS server refused for lack of permission (the report is dead-lettered)."})}
	p.confirm.reconnects = nc.Stats().Reconnects
	p.watchErrors()
	return p, nil
}

// Register adds the publisher's metrics to reg.
func (p *Publisher) Register(reg prometheus.Registerer) error {
	return reg.Register(p.permissionViolations)
}

// Sink is one route's NATS target.
type Sink struct {
	p          *Publisher
	route      string
	subject    *Subject
	includeRaw bool
}

// Sink compiles a route's target.
func (p *Publisher) Sink(route string, cfg RouteConfig) (*Sink, error) {
	if err := cfg.Validate(); err != nil { // fills the default subject
		return nil, err
	}
	subj, err := CompileSubject(cfg.Subject)
	if err != nil {
		return nil, err
	}
	return &Sink{p: p, route: route, subject: subj, includeRaw: cfg.IncludeRaw}, nil
}

// Message builds the NATS message a report becomes on this route, without sending it.
func (s *Sink) Message(ev *zuul.Event) (*nats.Msg, error) {
	return NewMessage(ev, s.route, s.subject, s.includeRaw)
}

// NewMessage builds the message for a report: subject, headers and body. The check
// subcommand prints exactly this.
func NewMessage(ev *zuul.Event, route string, subject *Subject, includeRaw bool) (*nats.Msg, error) {
	body := NewBody(ev, route, includeRaw)
	data, err := marshalBody(body)
	if err != nil {
		return nil, err
	}
	result := body.Result
	// The header values share one array: a header is a one-value slice of it, as
	// nats.Header.Set would make, without an allocation each. Sized for every header, so
	// the map is not grown either.
	vals := [...]string{
		// One id per report and route: the same report redelivered gets the same id
		// (JetStream drops the copy), and two routes publishing into one stream do not
		// drop each other.
		ev.ID + "/" + route, Schema, route,
		headerValue(ev.Tenant), headerValue(ev.Pipeline), headerValue(ev.Project), headerValue(ev.Branch),
		headerValue(ev.Action), headerValue(result), headerValue(string(ev.Outcome)), headerValue(ev.BuildsetUUID),
		"true",
	}
	n := len(headerKeys)
	if !ev.Recovered {
		n-- // Bridge-Recovered is only there when true
	}
	all := vals[:]
	h := make(nats.Header, len(headerKeys))
	for i := range n {
		h[headerKeys[i]] = all[i : i+1 : i+1]
	}
	return &nats.Msg{Subject: subject.Render(ev), Data: data, Header: h}, nil
}

// headerKeys names NewMessage's header values, in their order.
var headerKeys = [...]string{
	jetstream.MsgIDHeader, "Bridge-Schema", "Bridge-Route",
	"Zuul-Tenant", "Zuul-Pipeline", "Zuul-Project", "Zuul-Branch",
	"Zuul-Action", "Zuul-Result", "Zuul-Outcome", "Zuul-Buildset",
	"Bridge-Recovered",
}

// headerValue keeps a value from breaking the header block.
func headerValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	return v
}

// Send publishes a report. retry is true for what may succeed later (disconnected, no
// acknowledgement in time); false with an error for what never will (payload over the
// server's limit).
func (s *Sink) Send(ctx context.Context, ev *zuul.Event) (retry bool, err error) {
	confirm, retry, err := s.Start(ctx, ev)
	if err != nil {
		return retry, err
	}
	return confirm(ctx)
}

// Start puts a report on the wire and returns confirm, which waits until NATS has it. A
// caller that starts several reports and then confirms them in order pays one round trip
// for all of them.
func (s *Sink) Start(ctx context.Context, ev *zuul.Event) (confirm func(context.Context) (retry bool, err error), retry bool, err error) {
	msg, err := s.Message(ev)
	if err != nil {
		return nil, false, err
	}
	return s.p.start(ctx, msg)
}

// Publish sends one message, through JetStream when a stream covers its subject, and
// waits until NATS has it.
func (p *Publisher) Publish(ctx context.Context, msg *nats.Msg) (retry bool, err error) {
	if _, ok := ctx.Deadline(); !ok { // Flush and JetStream acks need one
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishTimeout)
		defer cancel()
	}
	confirm, retry, err := p.start(ctx, msg)
	if err != nil {
		return retry, err
	}
	return confirm(ctx)
}

func (p *Publisher) start(ctx context.Context, msg *nats.Msg) (func(context.Context) (bool, error), bool, error) {
	if err := CheckSubject(msg.Subject); err != nil {
		return nil, false, err
	}
	if err := checkFits(msg, p.nc.MaxPayload()); err != nil {
		return nil, false, err
	}
	if !p.nc.IsConnected() {
		return nil, true, errors.New("NATS is not connected")
	}
	stream, err := p.streamFor(ctx, msg.Subject)
	if err != nil {
		return nil, true, fmt.Errorf("looking up the stream for %s: %w", msg.Subject, err)
	}
	// The confirmations below keep the subject, not msg: a report confirmed in a run would
	// otherwise hold its encoded body until then, long after the publish copied it.
	subject := msg.Subject
	if stream == "" {
		denied := p.confirm.deniedCount(subject)
		p.pubMu.Lock()
		err := p.nc.PublishMsg(msg)
		seq := p.pubSeq.Add(1)
		p.pubMu.Unlock()
		if err != nil {
			return nil, retryable(err), err
		}
		return func(ctx context.Context) (bool, error) {
			if retry, err := p.flushThrough(ctx, seq); err != nil {
				return retry, err
			}
			if p.confirm.deniedCount(subject) != denied {
				return false, fmt.Errorf("%w for publish to %s", ErrPermission, subject)
			}
			return false, nil
		}, false, nil
	}
	denied := p.confirm.deniedCount(subject)
	fut, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(stream))
	if err != nil {
		return nil, retryable(err), fmt.Errorf("jetstream publish to %s (stream %s): %w", subject, stream, err)
	}
	return func(ctx context.Context) (bool, error) {
		select {
		case <-fut.Ok():
			return false, nil
		case err := <-fut.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
				p.forget(subject) // the stream went away: look again next time
			}
			return retryable(err), fmt.Errorf("jetstream publish to %s (stream %s): %w", subject, stream, err)
		case <-ctx.Done():
			if p.confirm.deniedCount(subject) != denied {
				return false, fmt.Errorf("jetstream publish to %s (stream %s): %w", subject, stream, ErrPermission)
			}
			return true, fmt.Errorf("jetstream publish to %s (stream %s): no acknowledgement: %w", subject, stream, ctx.Err())
		}
	}, false, nil
}

// flushThrough returns once the server has every core publish up to seq: a flush round
// trip proves it (core NATS has no per-message acknowledgement). A flush that began after
// seq was published confirms it too, so concurrent and batched publishes share flushes.
func (p *Publisher) flushThrough(ctx context.Context, seq uint64) (bool, error) {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	if p.flushed >= seq {
		if p.confirm.wasLost(seq) {
			return true, errLostInReconnect
		}
		return false, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishTimeout)
		defer cancel()
	}
	through := p.pubSeq.Load() // published before the flush's PING
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return true, fmt.Errorf("flush: %w", err)
	}
	if err := p.awaitAsyncErrors(ctx); err != nil {
		return true, err
	}
	if n := p.nc.Stats().Reconnects; n != p.confirm.reconnects {
		// Publishes since the last flush may have been written to the old connection.
		p.confirm.reconnects = n
		p.confirm.markLost(p.flushed, through)
	}
	p.flushed = through
	if p.confirm.wasLost(seq) {
		return true, errLostInReconnect
	}
	return false, nil
}

func retryable(err error) bool {
	return !errors.Is(err, nats.ErrMaxPayload) && !errors.Is(err, nats.ErrBadSubject) &&
		!errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadSubject) && !errors.Is(err, ErrPermission)
}

func (p *Publisher) streamFor(ctx context.Context, subject string) (string, error) {
	now := p.now()
	p.mu.Lock()
	e, ok := p.streams[subject]
	p.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.stream, nil
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	name, err := p.js.StreamNameBySubject(lctx, subject)
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, nats.ErrNoResponders):
		name = ""
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		// No JetStream answer, yet something listens on the API subject: a debugging
		// `nats sub ">"` does exactly that. Publish core: a stream covering the subject
		// still stores the message, only without an acknowledgement.
		p.log.Warn().Str("subject", subject).Msg("no answer from the JetStream API; publishing without JetStream acknowledgement")
		name = ""
	default:
		return "", err
	}
	p.mu.Lock()
	if len(p.streams) > 10000 { // subjects carry project names: bound the cache
		clear(p.streams)
	}
	p.streams[subject] = streamEntry{stream: name, until: now.Add(streamTTL)}
	p.mu.Unlock()
	return name, nil
}

func (p *Publisher) forget(subject string) {
	p.mu.Lock()
	delete(p.streams, subject)
	p.mu.Unlock()
}
