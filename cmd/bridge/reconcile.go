package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/pipeline"
	"github.com/SovereignCloudStack/zuul-bridge/internal/reconcile"
	"github.com/SovereignCloudStack/zuul-bridge/internal/rules"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
)

// reconciler reads zuul-web back (BRIDGE_ZUUL_URL) for the pipelines of routes that opt in,
// and feeds what MQTT missed into the same pipeline. It is not on the critical path: an
// unreachable zuul-web is retried and never stops the bridge.
type reconciler struct {
	cfg     *Config
	log     zerolog.Logger
	routes  []rules.Route
	client  *zuulweb.Client
	nc      *nats.Conn
	metrics *reconcile.Metrics
	store   atomic.Pointer[reconcile.Store]
	targets atomic.Pointer[map[reconcile.Target]bool]
}

func newReconciler(cfg *Config, log zerolog.Logger, routes []rules.Route, nc *nats.Conn, reg prometheus.Registerer) (*reconciler, error) {
	var token func() (string, error)
	if z := cfg.Zuul; z.Token != "" || z.TokenFile != "" {
		token = func() (string, error) { return secret(z.Token, z.TokenFile) }
	}
	client, err := zuulweb.New(zuulweb.Options{BaseURL: cfg.Zuul.URL, Token: token,
		HTTPClient: &http.Client{Timeout: 60 * time.Second}, UserAgent: "zuul-bridge/" + version})
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_ZUUL_URL: %w", err)
	}
	return &reconciler{cfg: cfg, log: log.With().Str("component", "reconcile").Logger(), routes: routes,
		client: client, nc: nc, metrics: reconcile.NewMetrics(reg)}, nil
}

// run finds the targets and the store (retrying while zuul-web or NATS are unreachable),
// then reconciles every interval until ctx is done.
func (r *reconciler) run(ctx context.Context, pl *pipeline.Pipeline) {
	var targets []reconcile.Target
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		var err error
		if targets, err = r.findTargets(ctx); err == nil {
			break
		}
		r.log.Warn().Err(err).Dur("retry_in", wait).Msg("cannot list the pipelines on zuul-web")
		if !sleepCtx(ctx, wait) {
			return
		}
	}
	set := map[reconcile.Target]bool{}
	for _, t := range targets {
		set[t] = true
	}
	r.targets.Store(&set)
	store := r.openStore(ctx)
	r.store.Store(&store)
	r.log.Info().Int("targets", len(targets)).Stringer("interval", r.cfg.Zuul.ReconcileInterval.v).Msg("reconciling with zuul-web")
	rec := reconcile.New(reconcile.Options{
		Client: r.client, Targets: targets, Interval: r.cfg.Zuul.ReconcileInterval.v, Lookback: r.cfg.Zuul.Lookback.v,
		Store: store, Submit: pl.Submit, Log: r.log, Metrics: r.metrics,
	})
	rec.Run(ctx)
}

// findTargets: each tenant of BRIDGE_ZUUL_TENANTS, each of its pipelines that a route
// opting in can match.
func (r *reconciler) findTargets(ctx context.Context) ([]reconcile.Target, error) {
	var out []reconcile.Target
	for _, tenant := range r.cfg.Zuul.Tenants {
		pipelines, err := r.client.Pipelines(ctx, tenant)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", tenant, err)
		}
		for _, p := range pipelines {
			for _, route := range r.routes {
				if route.Reconcile && route.Match.MayMatch(tenant, p) {
					out = append(out, reconcile.Target{Tenant: tenant, Pipeline: p})
					break
				}
			}
		}
	}
	return out, nil
}

// openStore keeps what was reconciled in a JetStream key-value bucket so a restart
// republishes nothing; without JetStream it keeps it in memory and says what that costs.
func (r *reconciler) openStore(ctx context.Context) reconcile.Store {
	js, err := jetstream.New(r.nc)
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var store reconcile.Store
		if store, err = reconcile.NewKVStore(sctx, js, r.cfg.Zuul.KVBucket); err == nil {
			return store
		}
	}
	r.log.Warn().Err(err).Stringer("lookback", r.cfg.Zuul.Lookback.v).
		Msg("no JetStream key-value bucket: reconciliation state kept in memory; after a restart failures within the lookback window are published again")
	return reconcile.NewMemoryStore()
}

// settled remembers a final MQTT report of a reconciled pipeline as applied, so that
// reading it back from zuul-web does not apply it again.
func (r *reconciler) settled(ev *zuul.Event) {
	if ev.Source != zuul.SourceMQTT || !ev.Final() {
		return
	}
	sp, tp := r.store.Load(), r.targets.Load()
	if sp == nil || tp == nil || !(*tp)[reconcile.Target{Tenant: ev.Tenant, Pipeline: ev.Pipeline}] {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := (*sp).MarkSeen(ctx, ev.ID); err != nil {
		r.log.Warn().Err(err).Str("id", ev.ID).Msg("could not remember the report as applied; zuul-web may apply it again")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
