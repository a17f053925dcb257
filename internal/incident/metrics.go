package incident

import "github.com/prometheus/client_golang/prometheus"

// metrics counts the incident lifecycle per route; it is the Observer a Manager with a
// Registerer uses.
type metrics struct {
	steps      *prometheus.CounterVec
	suppressed *prometheus.CounterVec
}

// registerMetrics registers the lifecycle counters and the gauge of incidents held open.
func registerMetrics(reg prometheus.Registerer, m *Manager) *metrics {
	mt := &metrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_incidents_total",
			Help: "Incident lifecycle steps per route (opened, updated, resolved)."}, []string{"route", "step"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zuul_bridge_incidents_suppressed_total",
			Help: "Failing reports that opened no incident, by reason (maintenance, hand-ended)."}, []string{"route", "reason"}),
	}
	reg.MustRegister(mt.steps, mt.suppressed, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zuul_bridge_incidents_open",
		Help: "Incidents the bridge holds open on the status page."}, func() float64 { return float64(m.OpenIncidents()) }))
	return mt
}

func (m *metrics) IncidentOpened(route string)   { m.steps.WithLabelValues(route, "opened").Inc() }
func (m *metrics) IncidentUpdated(route string)  { m.steps.WithLabelValues(route, "updated").Inc() }
func (m *metrics) IncidentResolved(route string) { m.steps.WithLabelValues(route, "resolved").Inc() }
func (m *metrics) Suppressed(route, reason string) {
	m.suppressed.WithLabelValues(route, reason).Inc()
}
