// Package features reports the parts of the bridge that did not start because the NATS
// server lacks something they need (JetStream): loudly and in one place, as a log line
// that names the feature and the fix, a gauge per feature and a line in the /readyz body.
// NATS routes never depend on it.
package features

import (
	"fmt"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// JetStreamFix is what an operator does about a missing JetStream.
const JetStreamFix = "enable JetStream on the NATS server (nats-server -js, or jetstream.enabled=true in the NATS Helm chart) " +
	"and give the bridge's NATS user the JetStream API ($JS.API.>)"

// Set tracks the features that are unavailable. The zero value is not usable: New.
type Set struct {
	log   zerolog.Logger
	gauge *prometheus.GaugeVec

	mu   sync.Mutex
	down map[string]string // feature -> why
}

// New registers the gauge zuul_bridge_feature_unavailable{feature} on reg.
func New(log zerolog.Logger, reg prometheus.Registerer) *Set {
	s := &Set{log: log, down: map[string]string{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "zuul_bridge_feature_unavailable",
			Help: "1 for a configured feature that did not start because the NATS server lacks what it needs (JetStream); the log and /readyz say why."},
			[]string{"feature"})}
	reg.MustRegister(s.gauge)
	return s
}

// Expect declares a configured feature, so that its gauge reads 0 while it works.
func (s *Set) Expect(feature string) { s.gauge.WithLabelValues(feature).Set(0) }

// NoJetStream records that feature does not run because NATS has no JetStream; err is
// what the server answered.
func (s *Set) NoJetStream(feature string, err error) {
	why := fmt.Sprintf("%s needs JetStream and did not start: %v; %s", feature, err, JetStreamFix)
	s.mu.Lock()
	_, known := s.down[feature]
	s.down[feature] = why
	s.mu.Unlock()
	s.gauge.WithLabelValues(feature).Set(1)
	if !known {
		s.log.Error().Str("feature", feature).Err(err).Str("fix", JetStreamFix).
			Msg(feature + " needs JetStream and did not start; NATS routes are not affected")
	}
}

// Notes are the /readyz lines of the unavailable features, sorted.
func (s *Set) Notes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.down))
	for _, why := range s.down {
		out = append(out, why)
	}
	sort.Strings(out)
	return out
}
