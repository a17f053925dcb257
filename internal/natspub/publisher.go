// Package natspub publishes kept reports to NATS: one subject per route (escaped so that a
// value can never add a level or a wildcard), a versioned JSON body, and Nats-Msg-Id for
// JetStream de-duplication. When a JetStream stream covers the subject the publish waits
// for the stream's acknowledgement. Only where JetStream answered that it is absent, or that
// no stream covers the subject, is it a core publish confirmed by a flush; a stream lookup
// that gets no such answer (a timeout, a permission violation on the JetStream API) fails
// the send, retryably, so that the report stays unacknowledged until a stream confirms it.
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
	failure lookupFailure // the last stream lookup that got no answer (under mu)
	// lookupTimeout bounds one stream lookup (a field so that tests can shorten it).
	lookupTimeout time.Duration

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
	stream string // "" = JetStream said no stream covers the subject: core publish
	until  time.Time
}

// lookupFailure is a stream lookup that got no definite answer. Until `until` every lookup
// fails with err at once, and while one lookup probes again (probing) the others do too:
// a worker pays the lookup timeout at most once per failureTTL, and no report is core
// published for want of an answer.
type lookupFailure struct {
	err     error
	until   time.Time
	probing bool

	logged  time.Time // when a failure was last logged
	loggedK string    // and its kind, so that a new kind is logged at once
}

// streamTTL bounds how long a stream name found for a subject is trusted; a stream deleted
// at run time is noticed at once (the publish gets no responders and the entry is dropped).
const streamTTL = 30 * time.Second

// coreTTL bounds how long "no stream covers the subject" is trusted: a stream created at
// run time is used within this time. Until then a publish to it is stored (if the stream
// accepts it) but confirmed only by a flush, so it is kept shorter than streamTTL.
const coreTTL = 10 * time.Second

// failureTTL is how long a lookup without an answer is repeated to every send of a subject
// not in the cache, before the next lookup is tried.
const failureTTL = time.Second

// failureLogInterval: a lookup failure of the same kind is logged at most this often.
const failureLogInterval = time.Minute

// defaultLookupTimeout bounds the stream lookup; the JetStream API answers in microseconds
// (a meta leader election takes seconds: the send is retried meanwhile).
const defaultLookupTimeout = 2 * time.Second

// apiStreamNames is the JetStream API subject of the lookup (STREAM.NAMES with a subject
// filter), which the bridge's NATS user must be allowed to publish to.
const apiStreamNames = "$JS.API.STREAM.NAMES"

// ErrJetStreamAPIDenied: the NATS server refused the stream lookup's request for lack of
// permission. Retryable (the report stays unacknowledged): without the lookup the bridge
// cannot tell whether a stream must acknowledge the report.
var ErrJetStreamAPIDenied = errors.New(`NATS permissions violation for publish to "` + apiStreamNames +
	`": the bridge's NATS user needs publish permission on it (or on "$JS.API.>") to find the stream that covers a subject`)

// errLookupTimeout is the cause of a lookup that got no answer in time.
var errLookupTimeout = errors.New("no answer from the JetStream API")

// publishTimeout bounds one publish when the caller set no deadline.
const publishTimeout = 10 * time.Second

// NewPublisher wraps a connection. Connect it with nats.ReconnectBufSize(-1): a publish
// while disconnected must fail, not sit in a buffer that a crash would lose.
func NewPublisher(nc *nats.Conn, log zerolog.Logger) (*Publisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	p := &Publisher{nc: nc, js: js, log: log, now: time.Now, streams: map[string]streamEntry{}, lookupTimeout: defaultLookupTimeout,
		confirm: newConfirmState(),
		permissionViolations: prometheus.NewCounter(prometheus.CounterOpts{Name: "zuul_bridge_nats_permission_violations_total",
			Help: "Publishes the NATS server refused for lack of permission (a report is dead-lettered; a refused JetStream stream lookup is retried)."})}
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

// streamFor names the stream that covers subject, or "" where JetStream said that none does
// or that it is not there at all (core publish). Any other outcome is an error, and the
// send fails retryably: a timeout (a meta leader election, an overloaded server), a
// permission violation on the JetStream API, the caller's deadline.
func (p *Publisher) streamFor(ctx context.Context, subject string) (string, error) {
	now := p.now()
	p.mu.Lock()
	if e, ok := p.streams[subject]; ok && now.Before(e.until) {
		p.mu.Unlock()
		return e.stream, nil
	}
	f := &p.failure
	if f.err != nil && (now.Before(f.until) || f.probing) {
		err := f.err
		p.mu.Unlock()
		return "", err
	}
	probing := f.err != nil
	f.probing = probing
	p.mu.Unlock()

	name, core, err := p.lookup(ctx, subject)

	now = p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if probing {
		f.probing = false
	}
	switch {
	case err == nil:
		f.err = nil
		ttl := streamTTL
		if core {
			ttl = coreTTL
		}
		if len(p.streams) > 10000 { // subjects carry project names: bound the cache
			clear(p.streams)
		}
		p.streams[subject] = streamEntry{stream: name, until: now.Add(ttl)}
		return name, nil
	case ctx.Err() != nil:
		return "", err // the caller's deadline: nothing learnt about NATS
	default:
		f.err, f.until = err, now.Add(failureTTL)
		kind := "timeout"
		if errors.Is(err, ErrJetStreamAPIDenied) {
			kind = "denied"
		}
		if kind != f.loggedK || !now.Before(f.logged.Add(failureLogInterval)) {
			f.logged, f.loggedK = now, kind
			p.log.Warn().Err(err).Str("subject", subject).
				Msg("JetStream stream lookup failed; reports are retried, not published, until it answers")
		}
		return "", err
	}
}

// lookup asks JetStream which stream covers subject. core is true where the answer is
// that none does, or that JetStream is not there (no responders on its API, not enabled).
func (p *Publisher) lookup(ctx context.Context, subject string) (name string, core bool, err error) {
	lctx, cancel := context.WithTimeoutCause(ctx, p.lookupTimeout, errLookupTimeout)
	defer cancel()
	// A request the server refuses for lack of permission gets no answer at all, only an
	// asynchronous -ERR: end the wait when that arrives.
	lctx, deny := context.WithCancelCause(lctx)
	defer deny(nil)
	denied := p.confirm.deniedCount(apiStreamNames)
	stop := p.confirm.onDenied(apiStreamNames, func() { deny(ErrJetStreamAPIDenied) })
	defer stop()
	name, err = p.js.StreamNameBySubject(lctx, subject)
	switch {
	case err == nil:
		return name, false, nil
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, nats.ErrNoResponders):
		return "", true, nil
	case errors.Is(context.Cause(lctx), ErrJetStreamAPIDenied) || p.confirm.deniedCount(apiStreamNames) != denied:
		return "", false, ErrJetStreamAPIDenied
	case ctx.Err() != nil:
		return "", false, err
	case errors.Is(context.Cause(lctx), errLookupTimeout):
		return "", false, fmt.Errorf("%w within %v (%s)", errLookupTimeout, p.lookupTimeout, apiStreamNames)
	default:
		return "", false, err
	}
}

func (p *Publisher) forget(subject string) {
	p.mu.Lock()
	delete(p.streams, subject)
	p.mu.Unlock()
}
