package pagework

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/outbox"
)

// Rules reload (issue 29). The routes of the status page side are replaced as a whole:
// the incident manager takes the new sinks (incident.Manager.SetRoutes: it keeps its key
// states, so no incident is opened twice), and when the set of route names changed, the
// outbox workers are stopped (a clean stop: every item a worker held goes back to the
// stream, unacknowledged, in order) and started again with the new names. A removed
// route's items stay in the stream, named at the restart like any route's that is not in
// the rules (outbox: warnOrphans, with the purge command); an added route's worker
// applies its items once its names resolved (Ready).

type reloader struct {
	mu      sync.Mutex // one reload at a time; held while runWorkers reads its first routes
	loop    atomic.Pointer[workerLoop]
	changed chan struct{} // a reload installed routes (awaitRoutes)
}

func newReloader() reloader { return reloader{changed: make(chan struct{}, 1)} }

// workerLoop is runWorkers while it runs: it takes reloads so that it can stop the
// workers before a route goes.
type workerLoop struct {
	req     chan reloadReq
	stopped chan struct{}
}

type reloadReq struct {
	ctx   context.Context
	sinks []*incident.Sink
	done  chan reloadResult
}

type reloadResult struct {
	ch  incident.RouteChanges
	err error
}

// SetRoutes makes sinks (built with the manager's NewSink, one per `statuspage:` route of
// the new rules) the status page routes, at any time before or while Run runs. See
// incident.Manager.SetRoutes for what happens to the routes' incidents; an error with
// RouteChanges.Sinks nil means nothing changed, any other is a read of the status page or
// the key store that failed (the routes are in force; names unresolved wait for the next
// catalogue refresh).
func (w *Work) SetRoutes(ctx context.Context, sinks []*incident.Sink) (incident.RouteChanges, error) {
	w.reload.mu.Lock()
	defer w.reload.mu.Unlock()
	if l := w.reload.loop.Load(); l != nil {
		r := reloadReq{ctx: ctx, sinks: sinks, done: make(chan reloadResult, 1)}
		select {
		case l.req <- r:
			res := <-r.done // the loop always answers a request it took
			return res.ch, res.err
		case <-l.stopped: // Run is over: nothing to stop
		case <-ctx.Done():
			return incident.RouteChanges{}, ctx.Err()
		}
	}
	return w.apply(ctx, sinks)
}

// apply installs sinks in the manager and here, and reports the names of the routes it
// could not resolve.
func (w *Work) apply(ctx context.Context, sinks []*incident.Sink) (incident.RouteChanges, error) {
	ch, err := w.o.Manager.SetRoutes(ctx, sinks)
	if ch.Sinks == nil {
		return ch, err
	}
	m := maps.Clone(ch.Sinks)
	w.sinksP.Store(&m)
	if w.started.Load() {
		unknown := map[string]error{}
		for name, s := range m {
			switch e, bad := ch.Unknown[name]; {
			case bad:
				unknown[name] = e
			case s.Resolved():
			case err != nil:
				unknown[name] = fmt.Errorf("names not resolved yet (%v); the catalogue refresh tries again", err)
			default: // unchanged and still unknown
				unknown[name] = errors.New(w.names.reason(name))
			}
		}
		w.names.set(m, unknown)
	}
	select {
	case w.reload.changed <- struct{}{}:
	default:
	}
	w.log.Info().Strs("added", ch.Added).Strs("changed", ch.Changed).Strs("removed", ch.Removed).
		Int("unknown_names", len(ch.Unknown)).Msg("status page routes replaced")
	return ch, err
}

// awaitRoutes waits until cond holds, looking again after every reload; false when ctx
// ended first.
func (r *reloader) awaitRoutes(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-r.changed:
		}
	}
	return true
}

// runWorkers runs the outbox workers of the routes in force until ctx is done, and starts
// them again with the new routes when a reload changed the set of route names.
func (w *Work) runWorkers(ctx context.Context, box *outbox.Outbox, opts outbox.WorkerOptions) {
	w.reload.mu.Lock()
	l := &workerLoop{req: make(chan reloadReq), stopped: make(chan struct{})}
	w.reload.loop.Store(l)
	routes := slices.Sorted(maps.Keys(w.sinks()))
	w.reload.mu.Unlock()
	defer func() { w.reload.loop.Store(nil); close(l.stopped) }()
	for {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		// With no route left, Run only names the items of routes not in the rules.
		go func() { defer close(done); box.Run(wctx, routes, opts) }()
		restart := false
		for !restart {
			select {
			case <-ctx.Done():
				cancel()
				<-done
				return
			case r := <-l.req:
				next := make([]string, 0, len(r.sinks))
				for _, s := range r.sinks {
					next = append(next, s.Name())
				}
				slices.Sort(next)
				if !slices.Equal(next, routes) {
					// Stop first: no worker of a removed route may apply another item.
					cancel()
					<-done
					restart = true
				}
				ch, err := w.apply(r.ctx, r.sinks)
				r.done <- reloadResult{ch, err}
				if restart {
					routes = slices.Sorted(maps.Keys(w.sinks()))
				}
			}
		}
		cancel()
	}
}
