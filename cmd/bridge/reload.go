package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/pagework"
	"github.com/SovereignCloudStack/zuul-bridge/internal/rules"
	"github.com/SovereignCloudStack/zuul-bridge/internal/rulewatch"
)

// Rules reload (issue 29): on SIGHUP, on POST /-/reload (BRIDGE_HTTP_LIFECYCLE=true) and
// when the rules file changes (a ConfigMap update swaps the mounted directory's ..data
// symlink; package rulewatch), the file is read and checked completely, as at start and
// as `bridge check` does; only a file valid throughout replaces the rules in force. An
// invalid file keeps the old rules and is logged with every problem, counted
// (zuul_bridge_rules_last_reload_successful 0) and noted in the /readyz body until a
// reload succeeds. A file with the same content (SHA-256) as the rules in force, or as
// the last refused file, changes nothing.
//
// What a reload changes: the routes (match, exclude, sinks), for the reports decoded from
// then on (delivery.Dispatcher.SetRoutes: reports in flight finish under the routes they
// matched), the status page routes (pagework.Work.SetRoutes) and the pipelines
// reconciliation reads back. The BRIDGE_* environment is read once at start: changing it
// needs a restart.

// loadRules reads and checks the rules file ("" = the built-in rules) and returns its
// routes and the hash of its content.
func loadRules(path string) ([]rules.Route, [32]byte, error) {
	if path == "" {
		routes, err := rules.Parse("built-in default rules", rules.Default)
		return routes, sha256.Sum256(rules.Default), err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("rules file: %w", err)
	}
	routes, err := rules.Parse(path, b)
	return routes, sha256.Sum256(b), err
}

// rulesNeedStatuspage names every route with a statuspage: block when the status page is
// not configured.
func rulesNeedStatuspage(routes []rules.Route, statuspageURL string) error {
	if statuspageURL != "" {
		return nil
	}
	var errs []error
	for _, r := range routes {
		if r.StatusPage != nil {
			errs = append(errs, fmt.Errorf("route %q has a statuspage: block, but BRIDGE_STATUSPAGE_URL is not set", r.Name))
		}
	}
	return errors.Join(errs...)
}

// ruleSet holds the rules in force and reloads them.
type ruleSet struct {
	path          string
	statuspageURL string
	log           zerolog.Logger
	pub           *natspub.Publisher
	sp            *incident.Manager
	spw           *pagework.Work
	dispatcher    *delivery.Dispatcher

	mu      sync.Mutex // one reload at a time
	hash    [32]byte   // the content in force
	refused [32]byte   // the content last refused (not reported again)

	routes  atomic.Pointer[[]rules.Route]
	failure atomic.Pointer[string] // the /readyz note while the last reload failed

	ok      prometheus.Gauge
	okAt    prometheus.Gauge
	reloads *prometheus.CounterVec
}

func newRuleSet(path, statuspageURL string, routes []rules.Route, hash [32]byte, log zerolog.Logger, reg prometheus.Registerer) *ruleSet {
	s := &ruleSet{path: path, statuspageURL: statuspageURL, hash: hash, log: log.With().Str("component", "rules").Logger(),
		ok: prometheus.NewGauge(prometheus.GaugeOpts{Name: "zuul_bridge_rules_last_reload_successful",
			Help: "1 if the last reload of the rules file succeeded (or none was tried), 0 if it was refused: the previous rules stay in force."}),
		okAt: prometheus.NewGauge(prometheus.GaugeOpts{Name: "zuul_bridge_rules_last_reload_success_timestamp_seconds",
			Help: "When the rules in force were loaded (start or last successful reload), Unix time."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_rules_reloads_total",
			Help: "Rules reloads tried, by result: applied, unchanged (same content) or refused (invalid file, rules kept)."}, []string{"result"}),
	}
	s.routes.Store(&routes)
	s.ok.Set(1)
	s.okAt.Set(float64(time.Now().UnixNano()) / 1e9)
	for _, r := range []string{"applied", "unchanged", "refused"} {
		s.reloads.WithLabelValues(r)
	}
	reg.MustRegister(s.ok, s.okAt, s.reloads)
	return s
}

// Routes are the routes in force.
func (s *ruleSet) Routes() []rules.Route { return *s.routes.Load() }

// reloadResult says what a reload did.
type reloadResult struct {
	Unchanged bool
	Routes    int
	Added     []string
	Removed   []string
	Kept      []string // routes of the same name (their configuration may have changed)
}

func (r reloadResult) String() string {
	if r.Unchanged {
		return "rules unchanged (same content as the rules in force)"
	}
	return fmt.Sprintf("rules reloaded: %d route(s); added %v, removed %v, kept (maybe changed) %v", r.Routes, r.Added, r.Removed, r.Kept)
}

// Reload reads the rules file and, if it is valid and differs from the rules in force,
// makes it the rules in force. trigger names the cause in the log.
func (s *ruleSet) Reload(ctx context.Context, trigger string) (reloadResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	routes, hash, err := loadRules(s.path)
	if err == nil && hash == s.hash {
		s.succeeded(false)
		s.reloads.WithLabelValues("unchanged").Inc()
		s.log.Debug().Str("trigger", trigger).Msg("rules file unchanged")
		return reloadResult{Unchanged: true, Routes: len(s.Routes())}, nil
	}
	if err == nil {
		err = rulesNeedStatuspage(routes, s.statuspageURL)
	}
	var prs []delivery.Route
	var sinks []*incident.Sink
	if err == nil {
		prs, sinks, err = s.build(routes)
	}
	if err != nil {
		return reloadResult{}, s.refuse(trigger, hash, err)
	}
	res := reloadResult{Routes: len(routes)}
	old := s.Routes()
	for _, r := range routes {
		if slices.ContainsFunc(old, func(o rules.Route) bool { return o.Name == r.Name }) {
			res.Kept = append(res.Kept, r.Name)
		} else {
			res.Added = append(res.Added, r.Name)
		}
	}
	for _, o := range old {
		if !slices.ContainsFunc(routes, func(r rules.Route) bool { return r.Name == o.Name }) {
			res.Removed = append(res.Removed, o.Name)
		}
	}
	// The status page side first: a removed route's outbox worker stops, an added
	// route's names are checked before its worker applies anything. Its error is a read
	// of the status page or the key store that failed: the routes are in force anyway.
	if s.spw != nil {
		spCtx, cancel := context.WithTimeout(ctx, time.Minute)
		ch, err := s.spw.SetRoutes(spCtx, sinks)
		cancel()
		if ch.Sinks == nil && err != nil {
			return reloadResult{}, s.refuse(trigger, hash, err)
		}
		if err != nil {
			s.log.Warn().Err(err).Msg("rules reload: the status page side could not check the new routes' names yet; their work waits until it can")
		}
	}
	s.dispatcher.SetRoutes(prs)
	s.routes.Store(&routes)
	s.hash = hash
	s.succeeded(true)
	s.reloads.WithLabelValues("applied").Inc()
	s.log.Info().Str("trigger", trigger).Str("file", s.path).Int("routes", len(routes)).Strs("added", res.Added).
		Strs("removed", res.Removed).Strs("kept", res.Kept).Msg("rules reloaded: new reports take the new routes")
	if len(res.Removed) > 0 {
		s.log.Info().Strs("removed", res.Removed).Msg("removed routes take no new reports; reports in flight finish; " +
			"their status page outbox items stay in the stream (purge them) and their open incidents are left alone")
	}
	return res, nil
}

// succeeded records a reload that left valid rules in force; applied: new ones.
func (s *ruleSet) succeeded(applied bool) {
	s.failure.Store(nil)
	s.ok.Set(1)
	if applied {
		s.okAt.Set(float64(time.Now().UnixNano()) / 1e9)
	}
	s.refused = [32]byte{}
}

// refuse reports an invalid file (once per content) and keeps the rules in force.
func (s *ruleSet) refuse(trigger string, hash [32]byte, err error) error {
	if hash == ([32]byte{}) { // unreadable: the same error is the same refusal
		hash = sha256.Sum256([]byte(err.Error()))
	}
	s.reloads.WithLabelValues("refused").Inc()
	s.ok.Set(0)
	problems := problemLines(err)
	note := fmt.Sprintf("rules: the last reload (%s, %s) was refused, the previous rules stay in force: %s",
		trigger, time.Now().UTC().Format(time.RFC3339), strings.Join(problems, "; "))
	s.failure.Store(&note)
	if hash != s.refused {
		s.log.Error().Str("trigger", trigger).Str("file", s.path).Strs("problems", problems).
			Msg("rules reload refused: the file has problems; the previous rules stay in force")
	}
	s.refused = hash
	return err
}

// problemLines splits a rules error ("file:\n  route ...: ...\n  ...") into its problems.
func problemLines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// build makes the delivery routes and the status page sinks of routes, without
// installing anything; every problem is reported.
func (s *ruleSet) build(routes []rules.Route) ([]delivery.Route, []*incident.Sink, error) {
	var out []delivery.Route
	var sinks []*incident.Sink
	var errs []error
	for _, r := range routes {
		dr := delivery.Route{Name: r.Name, Match: r.Match.Match}
		if r.NATS != nil {
			sk, err := s.pub.Sink(r.Name, *r.NATS)
			if err != nil {
				errs = append(errs, fmt.Errorf("route %q: %w", r.Name, err))
			} else {
				dr.Targets = append(dr.Targets, delivery.Target{Kind: "nats", Sink: sk})
			}
		}
		if r.StatusPage != nil && s.sp != nil {
			sk, err := s.sp.NewSink(r.Name, *r.StatusPage)
			if err != nil {
				errs = append(errs, fmt.Errorf("route %q: %w", r.Name, err))
			} else {
				sinks = append(sinks, sk)
				dr.Targets = append(dr.Targets, delivery.Target{Kind: "statuspage", Sink: s.spw.TargetOf(r.Name)})
			}
		}
		out = append(out, dr)
	}
	return out, sinks, errors.Join(errs...)
}

// Notes is the /readyz note while the last reload failed.
func (s *ruleSet) Notes() []string {
	if n := s.failure.Load(); n != nil {
		return []string{*n}
	}
	return nil
}

// watch reloads on SIGHUP (hup) and, with a rules file, when the file changes, until ctx
// is done.
func (s *ruleSet) watch(ctx context.Context, hup <-chan os.Signal) {
	if s.path != "" {
		err := rulewatch.Watch(ctx, s.path, rulewatch.Options{
			Changed: func() { s.Reload(ctx, "file changed") },
			Error:   func(err error) { s.log.Warn().Err(err).Msg("rules file watch") },
		})
		if err != nil {
			s.log.Warn().Err(err).Msg("the rules file is not watched: reload with SIGHUP or POST /-/reload")
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			s.Reload(ctx, "SIGHUP")
		}
	}
}

// reloadHandler serves /-/reload: POST reloads when the lifecycle endpoints are enabled
// (BRIDGE_HTTP_LIFECYCLE=true, as Prometheus's --web.enable-lifecycle).
func (s *ruleSet) reloadHandler(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !enabled {
			http.Error(w, "/-/reload is disabled: set BRIDGE_HTTP_LIFECYCLE=true to reload the rules over HTTP (or send the process SIGHUP; a changed rules file is reloaded by itself)", http.StatusNotFound)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST to reload the rules", http.StatusMethodNotAllowed)
			return
		}
		// A client that gives up does not cut a reload short (and make it look refused).
		res, err := s.Reload(context.WithoutCancel(r.Context()), "POST /-/reload")
		if err != nil {
			http.Error(w, "rules reload refused, the previous rules stay in force:\n"+strings.Join(problemLines(err), "\n"), http.StatusUnprocessableEntity)
			return
		}
		fmt.Fprintln(w, res.String())
	}
}
