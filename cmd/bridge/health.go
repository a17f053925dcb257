package main

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// health serves /healthz (the process loop answers and no connection closed for good), /readyz (MQTT subscribed and NATS
// connected; the third-party status page is deliberately not part of it) and /metrics.
type health struct {
	reg       *prometheus.Registry
	mqttReady func() bool
	natsReady func() bool
	// notes, when set, adds lines to the /readyz body (the status page side) without
	// changing its status.
	notes     func() []string
	mqttGauge prometheus.Gauge
	natsGauge prometheus.Gauge
	// dead is set when a connection closed for good (nothing reconnects it): /healthz
	// then fails so that the orchestrator restarts the process.
	dead atomic.Pointer[string]
	// stopping is set before the bridge closes its NATS connection at shutdown: that
	// close is deliberate, logged at info, and not a connection lost for good.
	stopping atomic.Bool
	pprof    bool // BRIDGE_HTTP_PPROF: also serve /debug/pprof/
	// reload serves /-/reload (reload.go); nil: not served.
	reload http.HandlerFunc
}

// natsClosed records that the NATS connection closed for good, with its last error.
func (h *health) natsClosed(err error) {
	msg := "NATS connection closed"
	if err != nil {
		msg += ": " + err.Error()
	}
	h.dead.Store(&msg)
}

func newHealth(reg *prometheus.Registry) *health {
	h := &health{
		reg: reg,
		mqttGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "zuul_bridge_mqtt_connected",
			Help: "1 while the MQTT subscription is active."}),
		natsGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "zuul_bridge_nats_connected",
			Help: "1 while NATS is connected."}),
	}
	reg.MustRegister(h.mqttGauge, h.natsGauge)
	return h
}

func (h *health) mqttUp(up bool) { h.mqttGauge.Set(b2f(up)) }
func (h *health) natsUp(up bool) { h.natsGauge.Set(b2f(up)) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (h *health) mux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if msg := h.dead.Load(); msg != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(*msg + "\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		mq, nt := h.mqttReady != nil && h.mqttReady(), h.natsReady != nil && h.natsReady()
		var notes string
		if h.notes != nil {
			for _, n := range h.notes() {
				notes += n + "\n"
			}
		}
		if mq && nt {
			w.Write([]byte("ready\n" + notes))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		msg := "not ready:"
		if !mq {
			msg += " MQTT not subscribed"
		}
		if !nt {
			msg += " NATS not connected"
		}
		w.Write([]byte(msg + "\n" + notes))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{Registry: h.reg}))
	if h.reload != nil {
		mux.HandleFunc("/-/reload", h.reload)
	}
	if h.pprof {
		handlePprof(mux)
	}
	return mux
}
