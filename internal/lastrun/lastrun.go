// Package lastrun keeps the one notion of "the pipeline ran" that the bridge exports: per
// tenant and pipeline, the end time of the newest completed buildset, whichever source saw
// it (an MQTT report or a buildset read from zuul-web), as the gauge
// zuul_bridge_pipeline_last_buildset_end_timestamp_seconds. The value is the buildset's own
// end time, not the time the bridge learned of it, and it never moves backwards: a late
// redelivery or an older buildset read back from zuul-web leaves it where it is.
//
// It imports nothing of the bridge but package zuul.
package lastrun

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// MetricName is the gauge's name.
const MetricName = "zuul_bridge_pipeline_last_buildset_end_timestamp_seconds"

// MaxSeries bounds the tenant/pipeline series: MQTT payloads name them, and a stream of
// garbage must not grow the metrics without end. Pipelines beyond it are not tracked.
const MaxSeries = 500

type key struct{ tenant, pipeline string }

// Gauge is the per-pipeline end time of the newest completed buildset. It is a
// prometheus.Collector; register it once. Safe for concurrent use.
type Gauge struct {
	desc *prometheus.Desc
	now  func() time.Time

	mu sync.Mutex
	at map[key]time.Time // zero: known pipeline without any completed buildset
}

// New returns an empty Gauge; now (nil: time.Now) bounds end times from the future.
func New(now func() time.Time) *Gauge {
	if now == nil {
		now = time.Now
	}
	return &Gauge{
		desc: prometheus.NewDesc(MetricName,
			"Unix time at which the newest completed buildset of the tenant's pipeline ended, from MQTT reports and zuul-web "+
				"(0: zuul-web knows no completed buildset of it). Never moves backwards.",
			[]string{"tenant", "pipeline"}, nil),
		now: now,
		at:  map[key]time.Time{},
	}
}

// Observe records that a buildset of the pipeline ended at end. The gauge keeps the
// latest end time it saw; an end time in the future (clock skew, a broken payload) is
// taken as now, so that one bad value cannot hold the gauge up. A zero end means "no
// completed buildset known": the series then exists with value 0 unless it has one.
func (g *Gauge) Observe(tenant, pipeline string, end time.Time) {
	if tenant == "" || pipeline == "" {
		return
	}
	if now := g.now(); end.After(now) {
		end = now
	}
	k := key{tenant, pipeline}
	g.mu.Lock()
	defer g.mu.Unlock()
	old, known := g.at[k]
	if !known && len(g.at) >= MaxSeries {
		return
	}
	if !known || end.After(old) {
		g.at[k] = end
	}
}

// ObserveEvent records a report or a buildset read from zuul-web if it says that the
// pipeline ran: a final report other than a dequeue (the item was removed before it
// reported; a new buildset follows). Start and enqueue reports say nothing about a run
// having completed and are ignored.
func (g *Gauge) ObserveEvent(ev *zuul.Event) {
	if !Completed(ev) {
		return
	}
	end := EndTime(ev)
	if end.IsZero() {
		return // nothing to say when; the bridge's clock is not the buildset's end
	}
	g.Observe(ev.Tenant, ev.Pipeline, end)
}

// Completed says whether ev is a completed buildset: final, and not dequeued.
func Completed(ev *zuul.Event) bool {
	return ev != nil && ev.Final() && ev.Result != "DEQUEUED" && ev.Action != "dequeue"
}

// EndTime is when the buildset of a final report ended: the latest end time of its builds,
// else the report's timestamp (Zuul builds the report when the buildset completed; for a
// buildset read from zuul-web it is last_build_end_time), else its trigger time (a
// buildset without builds, e.g. NO_JOBS). Zero when the event has none of them.
func EndTime(ev *zuul.Event) time.Time {
	var end time.Time
	for i := range ev.Builds {
		if t := ev.Builds[i].EndTime; t.After(end) {
			end = t
		}
	}
	if end.IsZero() {
		end = ev.Timestamp
	}
	if end.IsZero() {
		end = ev.TriggerTime
	}
	return end
}

// Last returns the recorded end time of the pipeline and whether it is tracked (a zero
// time with true: known, but no completed buildset).
func (g *Gauge) Last(tenant, pipeline string) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.at[key{tenant, pipeline}]
	return t, ok
}

// Describe implements prometheus.Collector.
func (g *Gauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *Gauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, t := range g.at {
		v := 0.0
		if !t.IsZero() {
			v = float64(t.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, k.tenant, k.pipeline)
	}
}
