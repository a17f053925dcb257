package delivery

import "github.com/SovereignCloudStack/zuul-bridge/internal/zuul"

// Routes that split a report: a route with Split handles, instead of the report, the
// events Split makes of it (zuul.Event.SplitJobs for `split: jobs`: one per voting build),
// each matched by the route on its own and sent to every target of the route as a
// delivery of its own (retried, dead-lettered and logged with its own id). The report is
// settled, and acknowledged, when every delivery of every route settled. The split happens
// here, where routes are matched, so the MQTT intake (Handle) and the zuul-web
// reconciler (Submit) go through the same one.

// routed is a route that takes a report, with the events it takes of it: nil for the
// report itself (a route that does not split: no allocation on the hot path).
type routed struct {
	route *Route
	evs   []*zuul.Event
}

// match returns what the route takes of ev, and whether it takes anything.
func (r *Route) match(ev *zuul.Event) (routed, bool) {
	if r.Split == nil {
		return routed{route: r}, r.Match(ev)
	}
	var evs []*zuul.Event
	for _, je := range r.Split(ev) {
		if r.Match(je) {
			evs = append(evs, je)
		}
	}
	return routed{route: r, evs: evs}, len(evs) > 0
}

// count is the number of events the route delivers of the report.
func (rt *routed) count() int {
	if rt.evs == nil {
		return 1
	}
	return len(rt.evs)
}

// at is the i-th event the route delivers of the report ev.
func (rt *routed) at(ev *zuul.Event, i int) *zuul.Event {
	if rt.evs == nil {
		return ev
	}
	return rt.evs[i]
}

// matchRoutes returns the routes that take ev, counting each in its matched metric.
func (p *Dispatcher) matchRoutes(ev *zuul.Event) []routed {
	var out []routed
	routes := p.routeSet()
	for i := range routes {
		r := &routes[i]
		if rt, ok := r.match(ev); ok {
			out = append(out, rt)
			p.o.Metrics.matchedFor(r.Name).Inc()
		}
	}
	return out
}
