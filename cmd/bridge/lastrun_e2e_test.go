package main

import (
	"math"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

const lastEnd = "zuul_bridge_pipeline_last_buildset_end_timestamp_seconds"

// nightlyThreshold is the daily threshold of the chart's ZuulBridgeNightlyNotReported.
const nightlyThreshold = 93600 * time.Second

// waitSeries waits until the series exists with the value want (Unix seconds).
func (p *bridgeProc) waitSeries(t *testing.T, labels string, want float64, what string) {
	t.Helper()
	var last float64
	var seen bool
	deadline := time.Now().Add(30 * time.Second)
	for {
		if last, seen = p.series(t, lastEnd+"{"+labels+"}"); seen && last == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s{%s} = %v (exists %v), want %v", what, lastEnd, labels, last, seen, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPipelineRanGaugeFromZuulWeb: with reconciliation on, the gauge of when a pipeline last
// ran is known at start for every reconciled pipeline, also one whose newest buildset is
// older than the lookback (its age is over the alert's threshold) and one without any
// buildset (0); a success that exists only in zuul-web moves it to that buildset's end
// time; an older report over MQTT does not move it back, and a report over MQTT of another
// pipeline sets that pipeline's; after a restart, with nothing new above the reconciler's
// cursor, the gauge is back at once.
func TestPipelineRanGaugeFromZuulWeb(t *testing.T) {
	t.Parallel()
	zw := zuulwebfake.New(zuulwebfake.Options{})
	t.Cleanup(zw.Close)
	zw.AddTenant("scs", "periodic-daily", "periodic-weekly", "check")
	h := newHarness(t, harnessOptions{AnyBroker: true, ClientID: "e2e-lastrun",
		JetStream: true, // the reconciler's cursor survives the restart
		Rules: `routes:
  - name: nightly
    match: {pipeline: "periodic-*", result: failure}
    nats: {}
    reconcile: true
`,
		Env: map[string]string{"BRIDGE_ZUUL_URL": zw.URL, "BRIDGE_ZUUL_TENANTS": "scs",
			"BRIDGE_ZUUL_RECONCILE_INTERVAL": "200ms", "BRIDGE_ZUUL_LOOKBACK": "24h"}})
	const standards = "SovereignCloudStack/standards"
	success := func(triggered time.Time) zuulwebfake.Buildset {
		triggered = triggered.UTC().Truncate(time.Second) // zuul-web's resolution
		end := triggered.Add(40 * time.Minute)
		return zw.Add("scs", zuulwebfake.Buildset{Pipeline: "periodic-daily", Result: "SUCCESS", Message: "Build succeeded.",
			EventTime: triggered, FirstBuildStart: triggered, LastBuildEnd: end,
			Refs:   []zuulwebfake.Ref{zuulwebfake.BranchRef(standards, "main")},
			Builds: []zuulwebfake.Build{{JobName: "scs-check-iaas", Result: "SUCCESS", Voting: true, Start: triggered, End: end}}})
	}
	const daily, weekly = `pipeline="periodic-daily",tenant="scs"`, `pipeline="periodic-weekly",tenant="scs"`

	// Two days without a run: only the seed reads it (older than the lookback).
	stale := success(time.Now().Add(-50 * time.Hour))
	p := h.start()
	p.waitSeries(t, daily, float64(stale.LastBuildEnd.Unix()), "newest buildset older than the lookback")
	if age := time.Since(stale.LastBuildEnd); age <= nightlyThreshold {
		t.Fatalf("age %v, want over the threshold %v", age, nightlyThreshold)
	}
	p.waitSeries(t, weekly, 0, "a reconciled pipeline that zuul-web has no buildset of")
	if _, ok := p.series(t, lastEnd+`{pipeline="check",tenant="scs"}`); ok {
		t.Fatal("check is not reconciled and sent nothing, yet has a series")
	}

	// A green night that only zuul-web knows (nothing over MQTT).
	fresh := success(time.Now().Add(-2 * time.Hour))
	p.waitSeries(t, daily, float64(fresh.LastBuildEnd.Unix()), "the success that exists only in zuul-web")

	// Over MQTT: an old periodic-daily failure (January 2025) does not move it back; a
	// check failure sets check's to the end of its last build.
	h.publish(sampleBytes(t, "periodic-daily_failure_mixed.json"))
	check := sampleBytes(t, "check_failure_pr.json")
	h.publishTo(sampleTopic(check), check)
	p.waitAcked(t, 2) // both MQTT reports settled
	if v, _ := p.series(t, lastEnd+"{"+daily+"}"); v != float64(fresh.LastBuildEnd.Unix()) {
		t.Fatalf("periodic-daily after an older MQTT report: %v, want still %d", v, fresh.LastBuildEnd.Unix())
	}
	const checkEnd = 1736784851.4075696 // the latest end_time of its builds
	if v, ok := p.series(t, lastEnd+`{pipeline="check",tenant="scs"}`); !ok || math.Abs(v-checkEnd) > 0.001 {
		t.Fatalf("check after its MQTT report: %v (exists %v), want its last build's end %v", v, ok, checkEnd)
	}

	// A restart: the cursor is past both buildsets, yet the gauge is known at once.
	p.kill(t)
	p = h.start()
	p.waitSeries(t, daily, float64(fresh.LastBuildEnd.Unix()), "after the restart")
	p.waitSeries(t, weekly, 0, "after the restart, the pipeline without buildsets")
}
