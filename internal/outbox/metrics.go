package outbox

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Metrics of the outbox. Labels are bounded: route names come from the rules file and
// from the items' headers (which this bridge wrote), outcomes are fixed words.
type Metrics struct {
	items   *prometheus.CounterVec
	retries *prometheus.CounterVec
	dlFail  *prometheus.CounterVec
	latency prometheus.Histogram
	depth   prometheus.Gauge
	oldest  prometheus.Gauge
}

// NewMetrics makes the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_outbox_items_total",
			Help: "Outbox items handled by this replica's worker, by route and outcome (applied, deferred, dead_lettered)."},
			[]string{"route", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_outbox_retries_total",
			Help: "Failed attempts to apply an outbox item that are retried."}, []string{"route"}),
		dlFail: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_outbox_dead_letter_failures_total",
			Help: "Outbox items dropped because their dead letter was refused for good (e.g. the dead-letter subject denied); alert on it."},
			[]string{"route"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "zuul_bridge_outbox_apply_delay_seconds",
			Help:    "Time from storing an outbox item to applying it on the status page.",
			Buckets: []float64{0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600}}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "zuul_bridge_outbox_depth",
			Help: "Items in the outbox stream not yet applied (all replicas; as last read, see the oldest-age gauge)."}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "zuul_bridge_outbox_oldest_age_seconds",
			Help: "Age of the oldest item in the outbox stream; 0 when it is empty."}),
	}
	if reg != nil {
		reg.MustRegister(m.items, m.retries, m.dlFail, m.latency, m.depth, m.oldest)
	}
	return m
}

// Watch reads the stream's state every interval into the depth and oldest-age gauges
// until ctx is done. A failed read leaves the gauges as they were.
func (o *Outbox) Watch(ctx context.Context, interval time.Duration, m *Metrics, log zerolog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, first, err := o.Stats(ctx)
		switch {
		case err != nil:
			log.Debug().Err(err).Msg("outbox state not read")
		case n == 0:
			m.depth.Set(0)
			m.oldest.Set(0)
		default:
			m.depth.Set(float64(n))
			m.oldest.Set(max(0, time.Since(first).Seconds()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
