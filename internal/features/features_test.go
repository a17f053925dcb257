package features_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/features"
)

// A feature on a server lacking JetStream is said once in the log (naming the feature and the fix),
// in the gauge and in the notes; an expected feature that works reads 0.
func TestNoJetStream(t *testing.T) {
	var log strings.Builder
	reg := prometheus.NewRegistry()
	s := features.New(zerolog.New(&log), reg)
	s.Expect("status page routes")
	s.Expect("reconciliation")
	s.NoJetStream("reconciliation", errors.New("nats: no responders"))
	s.NoJetStream("reconciliation", errors.New("nats: no responders"))
	if n := strings.Count(log.String(), `"level":"error"`); n != 1 {
		t.Fatalf("%d error lines, want 1: %s", n, log.String())
	}
	for _, want := range []string{"reconciliation needs JetStream", "nats-server -js", "no responders"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q: %s", want, log.String())
		}
	}
	notes := s.Notes()
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "reconciliation needs JetStream") || !strings.Contains(notes[0], "jetstream.enabled") {
		t.Errorf("notes: %q", notes)
	}
	want := `
# HELP zuul_bridge_feature_unavailable 1 for a configured feature that did not start because the NATS server lacks what it needs (JetStream); the log and /readyz say why.
# TYPE zuul_bridge_feature_unavailable gauge
zuul_bridge_feature_unavailable{feature="reconciliation"} 1
zuul_bridge_feature_unavailable{feature="status page routes"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "zuul_bridge_feature_unavailable"); err != nil {
		t.Error(err)
	}
}
