// Package outbox is the durable hand-off between the intake and the status page: a report
// bound for a `statuspage:` route is stored in a JetStream work-queue stream (the MQTT
// message is acknowledged once the stream confirmed it), and a worker shared by all
// replicas applies the stored items to the status page later, retrying for as long as the
// retry window allows. A status page outage therefore holds back nothing but its own work.
//
//	report --Send--> stream <prefix>.<route> --PubAck--> delivery settles, MQTT ack
//	                    |
//	                    +--worker (durable pull consumer, one item in flight)--> Apply
//	                                 | not ready (unknown names): Nak with a delay
//	                                 | failed for good / window over: dead letter, Ack
//
// An item is the report as a JSON-encoded zuul.Event (without the raw payload, which the
// status page does not use) and its route in a header.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Config names the stream and bounds it; zero values get the documented defaults.
type Config struct {
	// Stream is the stream's name; "" = DefaultStream. An existing stream is used as it
	// is configured (it must take Subject.>), but scaled up to Replicas; a missing one is
	// created with file storage and work-queue retention.
	Stream string
	// Subject is the prefix of the items' subjects, <Subject>.<route>; "" = DefaultSubject.
	Subject string
	// Consumer is the durable consumer every replica shares; "" = DefaultConsumer.
	Consumer string
	// MaxAge drops items stored longer ago than this, applied or not; <= 0 = 7 days. It
	// should exceed the retry window, which dead-letters an item before.
	MaxAge time.Duration
	// MaxBytes bounds the stream; when full, new items are refused (the report then stays
	// unacknowledged and is retried) rather than old ones dropped. <= 0 = 1 GiB.
	MaxBytes int64
	// Replicas of the stream in a NATS cluster; <= 0 = 1. An existing stream with fewer
	// is scaled up at Open (kvstore.EnsureReplicas).
	Replicas int
	// ReplicaCheck reports a stream NATS refused to scale up (it is then used as it is);
	// nil: that is an error of Open.
	ReplicaCheck *kvstore.ReplicaCheck
	// AckWait is how long an item a worker took stays with it without a sign of life
	// before JetStream gives it to another worker (after a crash); <= 0 = 10s. A working
	// worker renews it every AckWait/4, and a crashed replica's route is taken over after
	// 1.5 x AckWait (the pin), so this bounds what a crash costs the status page work.
	AckWait time.Duration
	// Duplicates is the window in which an item with the same report id and route is
	// stored once (a redelivered MQTT report); <= 0 = 10m.
	Duplicates time.Duration
	// Timeout bounds one publish or one API call; <= 0 = 10s.
	Timeout time.Duration
}

// Defaults of Config.
const (
	DefaultStream   = "ZUUL_BRIDGE_OUTBOX"
	DefaultSubject  = "zuul-bridge.outbox"
	DefaultConsumer = "zuul-bridge-outbox"
)

// Header names of an item.
const (
	HeaderRoute = "Bridge-Route"
	HeaderID    = "Bridge-Id"
)

func (c *Config) defaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AckWait <= 0 {
		c.AckWait = 10 * time.Second
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 10 * time.Minute
	}
	if c.Duplicates > c.MaxAge {
		c.Duplicates = c.MaxAge
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
}

// ErrNoJetStream: the NATS server (or the account) has no JetStream, so there is no
// outbox; the caller falls back to applying reports directly.
var ErrNoJetStream = errors.New("outbox: the NATS server has no JetStream")

// Outbox is an opened outbox stream. Safe for concurrent use.
type Outbox struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream

	unpinnedLogged atomic.Bool // the server cannot pin consumers: said once
}

// Open binds the stream, creating it when it is missing. It does not wait: an unreachable
// server is an error the caller retries; a server that lacks JetStream is ErrNoJetStream.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Outbox, error) {
	cfg.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	object := kvstore.StreamObject(cfg.Stream)
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, ErrNoJetStream
		}
		return nil, fmt.Errorf("outbox: JetStream account info: %w", err)
	}
	created := false
	stream, err := js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        cfg.Stream,
			Description: "zuul-bridge: status page work not yet applied",
			Subjects:    []string{cfg.Subject + ".>"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardNew,
			MaxAge:      cfg.MaxAge,
			MaxBytes:    cfg.MaxBytes,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.Duplicates,
		})
		created = err == nil
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another replica was faster
			stream, err = js.Stream(ctx, cfg.Stream)
		}
		// e.g. three replicas on a single server: say which setting asks for them.
		if rerr := kvstore.ReplicasError(err, object, cfg.Replicas, cfg.ReplicaCheck); rerr != err {
			return nil, fmt.Errorf("outbox: %w", rerr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: stream %s: %w", cfg.Stream, err)
	}
	if !created {
		if err := kvstore.EnsureReplicas(ctx, js, stream, object, cfg.Replicas, cfg.ReplicaCheck); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	// An existing stream is used as it is, so it must be one the outbox works with: a work
	// queue (else applied items stay, and the backlog with them) that takes the items'
	// subjects (else every store fails).
	if r := stream.CachedInfo().Config.Retention; r != jetstream.WorkQueuePolicy {
		return nil, fmt.Errorf("outbox: stream %s has retention %s; the outbox needs a work-queue stream (delete it to have it created, or name another)", cfg.Stream, r)
	}
	if name, err := js.StreamNameBySubject(ctx, cfg.Subject+".x"); err != nil || name != cfg.Stream {
		return nil, fmt.Errorf("outbox: stream %s does not take the subjects %s.> (they go to %q, %v)", cfg.Stream, cfg.Subject, name, err)
	}
	return &Outbox{cfg: cfg, js: js, stream: stream}, nil
}

// Config returns the configuration with its defaults filled in.
func (o *Outbox) Config() Config { return o.cfg }

// Subject is where the items of route are stored.
func (o *Outbox) Subject(route string) string { return o.cfg.Subject + "." + route }

// item is the stored form of a report.
func encode(ev *zuul.Event) ([]byte, error) {
	c := *ev
	c.Raw = nil // the status page does not use it; it would double the item's size
	return json.Marshal(&c)
}

func decode(b []byte) (*zuul.Event, error) {
	var ev zuul.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// message is the item of ev for route.
func (o *Outbox) message(route string, ev *zuul.Event) (*nats.Msg, error) {
	data, err := encode(ev)
	if err != nil {
		return nil, permanent{fmt.Errorf("outbox: encode: %w", err)}
	}
	msg := nats.NewMsg(o.Subject(route))
	msg.Data = data
	msg.Header.Set(HeaderRoute, route)
	if ev.ID != "" {
		msg.Header.Set(HeaderID, ev.ID)
		msg.Header.Set(jetstream.MsgIDHeader, "outbox/"+ev.ID+"/"+route)
	}
	return msg, nil
}

// Append stores the report for route and returns once the stream confirmed it. The same
// report and route appended again within Config.Duplicates is stored once.
func (o *Outbox) Append(ctx context.Context, route string, ev *zuul.Event) error {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	confirm, err := o.start(route, ev)
	if err != nil {
		return err
	}
	return confirm(ctx)
}

// start publishes the item without waiting; confirm waits for the stream's acknowledgement.
func (o *Outbox) start(route string, ev *zuul.Event) (confirm func(context.Context) error, err error) {
	msg, err := o.message(route, ev)
	if err != nil {
		return nil, err
	}
	fut, err := o.js.PublishMsgAsync(msg, jetstream.WithExpectStream(o.cfg.Stream))
	if err != nil {
		return nil, storeError(err)
	}
	return func(ctx context.Context) error {
		select {
		case <-fut.Ok():
			return nil
		case err := <-fut.Err():
			return storeError(err)
		case <-ctx.Done():
			return fmt.Errorf("outbox: store: no acknowledgement: %w", ctx.Err())
		}
	}, nil
}

func storeError(err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return permanent{fmt.Errorf("outbox: %w", err)}
	}
	return fmt.Errorf("outbox: store: %w", err)
}

type permanent struct{ error }

func (e permanent) Unwrap() error { return e.error }

// Sink is the delivery sink of route's status page work: Send stores the report in the
// outbox. It implements delivery.Sink.
type Sink struct {
	o     *Outbox
	route string
}

// Sink returns the sink that stores route's reports.
func (o *Outbox) Sink(route string) *Sink { return &Sink{o: o, route: route} }

// Send stores ev; an error is retryable unless the item can never be stored (too large).
func (s *Sink) Send(ctx context.Context, ev *zuul.Event) (retry bool, err error) {
	err = s.o.Append(ctx, s.route, ev)
	return retryable(err), err
}

// Start publishes ev and returns at once; confirm waits for the stream's acknowledgement,
// so that the delivery can store a batch of reports with one wait (delivery.Starter).
func (s *Sink) Start(_ context.Context, ev *zuul.Event) (confirm func(context.Context) (bool, error), retry bool, err error) {
	c, err := s.o.start(s.route, ev)
	if err != nil {
		return nil, retryable(err), err
	}
	return func(ctx context.Context) (bool, error) {
		err := c(ctx)
		return retryable(err), err
	}, false, nil
}

func retryable(err error) bool {
	var p permanent
	return err != nil && !errors.As(err, &p)
}

// Orphans counts the stored items of routes not in routes, by route: a route removed from
// the rules leaves its items with nobody to apply them.
func (o *Outbox) Orphans(ctx context.Context, routes []string) (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	info, err := o.stream.Info(ctx, jetstream.WithSubjectFilter(o.cfg.Subject+".>"))
	if err != nil {
		return nil, err
	}
	orphans := map[string]uint64{}
	for subject, n := range info.State.Subjects {
		route, ok := strings.CutPrefix(subject, o.cfg.Subject+".")
		if ok && !slices.Contains(routes, route) {
			orphans[route] = n
		}
	}
	return orphans, nil
}

// Stats are the items not yet applied and the time the oldest was stored (zero when none).
func (o *Outbox) Stats(ctx context.Context) (pending uint64, oldest time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	info, err := o.stream.Info(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	if info.State.Msgs == 0 {
		return 0, time.Time{}, nil
	}
	return info.State.Msgs, info.State.FirstTime, nil
}
