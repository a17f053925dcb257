package delivery

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's counters. Labels are bounded: route names come from the
// rules file, sink kinds and reasons are fixed words.
type Metrics struct {
	received     prometheus.Counter
	rejected     *prometheus.CounterVec
	filtered     prometheus.Counter
	matched      *prometheus.CounterVec
	deliveries   *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	// deadLetterFailed: dead letters refused for good, the report dropped.
	deadLetterFailed *prometheus.CounterVec
	acked            prometheus.Counter
	decoded          prometheus.Counter
	latency          *prometheus.HistogramVec
	lastReport       prometheus.Gauge

	lastUnix atomic.Int64 // ns; the start time until the first report

	cache metricCache
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "zuul_bridge_reports_received_total",
			Help: "MQTT messages handed to the pipeline."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_reports_rejected_total",
			Help: "Payloads that are not Zuul reports, by reason."}, []string{"reason"}),
		filtered: prometheus.NewCounter(prometheus.CounterOpts{Name: "zuul_bridge_reports_filtered_total",
			Help: "Reports that no route kept."}),
		matched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_route_matched_total",
			Help: "Reports a route kept."}, []string{"route"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_deliveries_total",
			Help: "Settled deliveries per route and sink, by outcome (delivered, failed, abandoned)."}, []string{"route", "sink", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_delivery_retries_total",
			Help: "Delivery attempts that failed temporarily and were retried."}, []string{"route", "sink"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_dead_lettered_total",
			Help: "Reports recorded on the dead-letter subject, by sink (\"\" for undecodable payloads)."}, []string{"sink"}),
		deadLetterFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_dead_letter_failures_total",
			Help: "Dead letters the server refused for good (subject, permission); the report is dropped and logged."}, []string{"sink"}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{Name: "zuul_bridge_reports_acked_total",
			Help: "MQTT messages acknowledged after every matched sink settled."}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "zuul_bridge_delivery_duration_seconds",
			Help: "Time from the first attempt to a confirmed delivery, per sink; a report confirmed in a run includes the run's wait (up to 20 ms).", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"sink"}),
		lastReport: prometheus.NewGauge(prometheus.GaugeOpts{Name: "zuul_bridge_last_report_timestamp_seconds",
			Help: "Unix time of the last MQTT message received."}),
		decoded: prometheus.NewCounter(prometheus.CounterOpts{Name: "zuul_bridge_reports_decoded_total",
			Help: "MQTT messages that decoded as Zuul reports."}),
	}
	m.lastUnix.Store(time.Now().UnixNano())
	since := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zuul_bridge_seconds_since_last_report",
		Help: "Seconds since the last MQTT message (since start while none came)."},
		func() float64 { return time.Since(time.Unix(0, m.lastUnix.Load())).Seconds() })
	if reg != nil {
		reg.MustRegister(since)
		reg.MustRegister(m.received, m.rejected, m.filtered, m.matched, m.deliveries, m.retries, m.deadLettered, m.deadLetterFailed, m.acked, m.latency, m.lastReport, m.decoded)
	}
	return m
}
