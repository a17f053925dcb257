package delivery

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// delivered records a successful delivery begun at start: the delivered counter and the
// duration, through the cached series, and a debug event: at the default level info it
// costs nothing. What is not routine (retries, failures, dead letters) stays at warn and
// error.
func (p *Dispatcher) delivered(ev *zuul.Event, r *Route, t Target, start time.Time, attempts int) {
	dm := p.o.Metrics.deliveredFor(r.Name, t.Kind)
	dm.delivered.Inc()
	dm.latency.Observe(p.o.Now().Sub(start).Seconds())
	if e := p.o.Log.Debug(); e.Enabled() {
		e.Str("route", r.Name).Str("sink", t.Kind).Str("id", ev.ID).Str("pipeline", ev.Pipeline).Str("project", ev.Project).
			Str("branch", ev.Branch).Str("result", ev.Result).Int("attempts", attempts).Msg("delivered")
	}
}

// deliveredMetrics are the series a successful delivery touches, looked up once per route
// and sink kind: WithLabelValues hashes and checks its labels on every call, which on the
// hot path cost more than the increment itself.
type deliveredMetrics struct {
	delivered prometheus.Counter
	latency   prometheus.Observer
}

// metricCache holds the children of the hot-path metric vectors, by label values. Route
// names come from the rules file and kinds are fixed words, so it stays small.
type metricCache struct {
	delivered sync.Map // [2]string{route, kind} -> *deliveredMetrics
	matched   sync.Map // route -> prometheus.Counter
}

func (m *Metrics) deliveredFor(route, kind string) *deliveredMetrics {
	key := [2]string{route, kind}
	if v, ok := m.cache.delivered.Load(key); ok {
		return v.(*deliveredMetrics)
	}
	d := &deliveredMetrics{
		delivered: m.deliveries.WithLabelValues(route, kind, "delivered"),
		latency:   m.latency.WithLabelValues(kind),
	}
	v, _ := m.cache.delivered.LoadOrStore(key, d)
	return v.(*deliveredMetrics)
}

func (m *Metrics) matchedFor(route string) prometheus.Counter {
	if v, ok := m.cache.matched.Load(route); ok {
		return v.(prometheus.Counter)
	}
	v, _ := m.cache.matched.LoadOrStore(route, m.matched.WithLabelValues(route))
	return v.(prometheus.Counter)
}
