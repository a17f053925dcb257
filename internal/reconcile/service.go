package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
)

// ServiceOptions configure NewService.
type ServiceOptions struct {
	Client  *zuulweb.Client
	Tenants []string
	// Wants says whether a route that opts in to reconciliation can match the pipeline.
	Wants    func(tenant, pipeline string) bool
	Interval time.Duration
	Lookback time.Duration
	Settle   time.Duration // see Options.Settle
	// NATS and Bucket keep the Store in a JetStream key-value bucket.
	NATS   *nats.Conn
	Bucket string
	// Replicas of the bucket (an existing one with fewer is scaled up); <= 0 = 1.
	Replicas     int
	ReplicaCheck *kvstore.ReplicaCheck // reports a bucket NATS refused to scale up
	// NoJetStream is told when the NATS server has no JetStream: reconciliation does not
	// start then (nil = only logged).
	NoJetStream func(error)
	Submit      Submit
	Log         zerolog.Logger
	Metrics     *Metrics
	// Ran is Options.Ran.
	Ran func(tenant, pipeline string, end time.Time)
}

// Service is reconciliation as the bridge runs it: it finds its targets on zuul-web and
// its Store, retrying while either is unreachable, then reconciles every Interval. It is
// not on the critical path: an unreachable zuul-web never stops the bridge.
type Service struct {
	o       ServiceOptions
	rawLog  zerolog.Logger // the caller's; Reconciler adds the component itself
	store   atomic.Pointer[Store]
	targets atomic.Pointer[map[Target]bool]

	// Reports settled over MQTT before the targets and the store were known (a restart
	// with a backlog in the broker while zuul-web is still being asked): remembered here
	// and recorded before the first round, so that round does not recover them again.
	mu    sync.Mutex
	ready bool
	early []settledEarly
}

type settledEarly struct {
	t  Target
	id string
}

// maxEarly bounds the reports remembered before the store is open; beyond it the oldest
// are forgotten (a report forgotten so may be published once more, marked recovered).
const maxEarly = 10000

// NewService returns a Service; Run starts it.
func NewService(o ServiceOptions) *Service {
	s := &Service{o: o, rawLog: o.Log}
	s.o.Log = o.Log.With().Str("component", "reconcile").Logger()
	return s
}

// Run reconciles until ctx is done.
func (s *Service) Run(ctx context.Context) {
	var targets []Target
	err := retry.Until(ctx, retry.Backoff{Min: time.Second, Max: time.Minute}, func(ctx context.Context) (err error) {
		targets, err = s.findTargets(ctx)
		return err
	}, nil, func(err error, wait time.Duration) {
		s.o.Log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Msg("cannot list the pipelines on zuul-web")
	})
	if err != nil {
		return
	}
	set := map[Target]bool{}
	for _, t := range targets {
		set[t] = true
	}
	s.targets.Store(&set)
	store, err := s.openStore(ctx)
	if err != nil {
		return
	}
	s.store.Store(&store)
	s.mu.Lock()
	early := s.early
	s.early, s.ready = nil, true
	s.mu.Unlock()
	for _, e := range early {
		if set[e.t] {
			s.markSeen(store, e.id)
		}
	}
	s.o.Log.Info().Int("targets", len(targets)).Stringer("interval", s.o.Interval).Msg("reconciling with zuul-web")
	New(Options{
		Client: s.o.Client, Targets: targets, Interval: s.o.Interval, Lookback: s.o.Lookback, Settle: s.o.Settle,
		Store: store, Submit: s.o.Submit, Log: s.rawLog, Metrics: s.o.Metrics, Ran: s.o.Ran,
	}).Run(ctx)
}

// findTargets: each tenant, each of its pipelines that a route opting in can match.
func (s *Service) findTargets(ctx context.Context) ([]Target, error) {
	var out []Target
	for _, tenant := range s.o.Tenants {
		pipelines, err := s.o.Client.Pipelines(ctx, tenant)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", tenant, err)
		}
		for _, p := range pipelines {
			if s.o.Wants(tenant, p) {
				out = append(out, Target{Tenant: tenant, Pipeline: p})
			}
		}
	}
	return out, nil
}

// openStore opens the JetStream key-value bucket that keeps what was reconciled, so that a
// restart republishes nothing, retrying while NATS cannot say. If the server lacks JetStream it gives
// up and says so: reconciliation needs the bucket.
func (s *Service) openStore(ctx context.Context) (Store, error) {
	var store *kvstore.Seen
	err := retry.Until(ctx, retry.Backoff{Min: time.Second, Max: time.Minute}, func(ctx context.Context) error {
		js, err := jetstream.New(s.o.NATS)
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		store, err = kvstore.OpenSeen(sctx, js, kvstore.SeenOptions{Bucket: s.o.Bucket, Replicas: s.o.Replicas, ReplicaCheck: s.o.ReplicaCheck})
		return err
	}, func(err error) bool { return errors.Is(err, kvstore.ErrNoJetStream) }, func(err error, wait time.Duration) {
		s.o.Log.Warn().Err(err).Stringer("retry_in", wait.Round(time.Millisecond)).Str("bucket", s.o.Bucket).Msg("reconciliation bucket not available yet")
	})
	if errors.Is(err, kvstore.ErrNoJetStream) {
		if s.o.NoJetStream != nil {
			s.o.NoJetStream(err)
		} else {
			s.o.Log.Error().Err(err).Msg("reconciliation needs JetStream and did not start")
		}
	}
	if err != nil {
		return nil, err
	}
	return store, nil
}

// Settled remembers a final MQTT report of a reconciled pipeline as applied, so that
// reading it back from zuul-web does not apply it again.
func (s *Service) Settled(ev *zuul.Event) {
	if ev.Source != zuul.SourceMQTT || !ev.Final() {
		return
	}
	s.mu.Lock()
	if !s.ready {
		if len(s.early) >= maxEarly {
			s.early = s.early[1:]
		}
		s.early = append(s.early, settledEarly{Target{Tenant: ev.Tenant, Pipeline: ev.Pipeline}, ev.ID})
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	sp, tp := s.store.Load(), s.targets.Load()
	if sp == nil || tp == nil || !(*tp)[Target{Tenant: ev.Tenant, Pipeline: ev.Pipeline}] {
		return
	}
	s.markSeen(*sp, ev.ID)
}

func (s *Service) markSeen(store Store, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := store.MarkSeen(ctx, id); err != nil {
		s.o.Log.Warn().Err(err).Str("id", id).Msg("could not remember the report as applied; zuul-web may apply it again")
	}
}
