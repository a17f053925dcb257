package reconcile

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of the reconciler, all named zuul_bridge_reconcile_*.
type Metrics struct {
	rounds    prometheus.Counter
	errors    *prometheus.CounterVec
	reports   *prometheus.CounterVec
	recovered *prometheus.CounterVec
	newest    *newestCollector
}

// NewMetrics registers the reconciler's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		rounds: f.NewCounter(prometheus.CounterOpts{
			Name: "zuul_bridge_reconcile_rounds_total",
			Help: "Reconcile rounds run (one pass over all targets).",
		}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "zuul_bridge_reconcile_errors_total",
			Help: "Target passes that ended with an error (zuul-web, store or submit); retried next round.",
		}, []string{"tenant", "pipeline"}),
		reports: f.NewCounterVec(prometheus.CounterOpts{
			Name: "zuul_bridge_reconcile_reports_total",
			Help: "Reports found only in zuul-web and submitted, by outcome.",
		}, []string{"tenant", "pipeline", "outcome"}),
		recovered: f.NewCounterVec(prometheus.CounterOpts{
			Name: "zuul_bridge_reconcile_recovered_total",
			Help: "Failures whose MQTT report never arrived, recovered from zuul-web.",
		}, []string{"tenant", "pipeline"}),
		newest: &newestCollector{
			desc: prometheus.NewDesc("zuul_bridge_reconcile_newest_buildset_age_seconds",
				"Seconds since the newest completed buildset seen in zuul-web ended (its last build's end, else its trigger time).",
				[]string{"tenant", "pipeline"}, nil),
			at:  map[Target]time.Time{},
			now: time.Now,
		},
	}
	reg.MustRegister(m.newest)
	return m
}

// initFor makes the series of the targets exist at 0.
func (m *Metrics) initFor(ts []Target, now func() time.Time) {
	for _, t := range ts {
		m.errors.WithLabelValues(t.Tenant, t.Pipeline)
		m.recovered.WithLabelValues(t.Tenant, t.Pipeline)
	}
	m.newest.mu.Lock()
	m.newest.now = now
	m.newest.mu.Unlock()
}

// newestCollector computes the age at scrape time, so it keeps growing between rounds
// when a periodic pipeline stops running.
type newestCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	at   map[Target]time.Time
	now  func() time.Time
}

func (c *newestCollector) observe(t Target, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.at[t]) {
		c.at[t] = at
	}
}

func (c *newestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *newestCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for t, at := range c.at {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, now.Sub(at).Seconds(), t.Tenant, t.Pipeline)
	}
}
