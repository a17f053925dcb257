package lastrun_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
	"github.com/SovereignCloudStack/zuul-bridge/internal/lastrun"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
)

var now = time.Date(2025, 1, 20, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func decode(t *testing.T, name string) *zuul.Event {
	t.Helper()
	b := samples.Get(name)
	if b == nil {
		t.Fatalf("no sample %s", name)
	}
	ev, err := zuul.Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

func last(t *testing.T, g *lastrun.Gauge, tenant, pipeline string) time.Time {
	t.Helper()
	at, ok := g.Last(tenant, pipeline)
	if !ok {
		t.Fatalf("%s/%s not tracked", tenant, pipeline)
	}
	return at
}

func TestObserveNeverMovesBackwards(t *testing.T) {
	g := lastrun.New(clock)
	day := now.Add(-24 * time.Hour)
	g.Observe("scs", "periodic-daily", day)
	g.Observe("scs", "periodic-daily", day.Add(-time.Hour)) // an older buildset read later
	if got := last(t, g, "scs", "periodic-daily"); !got.Equal(day) {
		t.Fatalf("older end time moved the gauge to %v, want %v", got, day)
	}
	g.Observe("scs", "periodic-daily", time.Time{}) // "no buildset known" must not reset it
	if got := last(t, g, "scs", "periodic-daily"); !got.Equal(day) {
		t.Fatalf("zero time moved the gauge to %v", got)
	}
	g.Observe("scs", "periodic-daily", day.Add(time.Minute))
	if got := last(t, g, "scs", "periodic-daily"); !got.Equal(day.Add(time.Minute)) {
		t.Fatalf("newer end time: gauge %v, want %v", got, day.Add(time.Minute))
	}
	// From the future (clock skew): taken as now, then nothing older moves it back.
	g.Observe("scs", "periodic-daily", now.Add(100*24*time.Hour))
	if got := last(t, g, "scs", "periodic-daily"); !got.Equal(now) {
		t.Fatalf("end time in the future: gauge %v, want now %v", got, now)
	}
}

func TestNeverRanIsZeroUntilARun(t *testing.T) {
	g := lastrun.New(clock)
	g.Observe("scs", "periodic-weekly", time.Time{})
	want := `
# HELP zuul_bridge_pipeline_last_buildset_end_timestamp_seconds Unix time at which the newest completed buildset of the tenant's pipeline ended, from MQTT reports and zuul-web (0: zuul-web knows no completed buildset of it). Never moves backwards.
# TYPE zuul_bridge_pipeline_last_buildset_end_timestamp_seconds gauge
zuul_bridge_pipeline_last_buildset_end_timestamp_seconds{pipeline="periodic-weekly",tenant="scs"} 0
`
	if err := testutil.CollectAndCompare(g, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	g.Observe("scs", "periodic-weekly", time.Unix(1736830440, 0))
	if got := testutil.ToFloat64(g); got != 1736830440 {
		t.Fatalf("after a run: %v, want 1736830440", got)
	}
}

func TestObserveEventUsesTheBuildsetsEndTime(t *testing.T) {
	g := lastrun.New(clock)
	// The failure ended with its last build, 1736828381.64; the report was built 14 s later.
	g.ObserveEvent(decode(t, "periodic-daily_failure_mixed.json"))
	if got, want := last(t, g, "scs", "periodic-daily"), time.Unix(1736828381, 640630700); got.Sub(want).Abs() > time.Millisecond {
		t.Fatalf("failure: %v, want the last build's end %v", got, want)
	}
	// A start report and a dequeue say nothing about a completed run.
	g.ObserveEvent(decode(t, "periodic-daily_start.json"))
	g.ObserveEvent(decode(t, "check_dequeue.json"))
	if _, ok := g.Last("scs", "check"); ok {
		t.Error("a dequeue counted as a run")
	}
	if got := last(t, g, "scs", "periodic-daily"); got.Unix() != 1736828381 {
		t.Errorf("a start report moved the gauge to %v", got)
	}
	// NO_JOBS has no builds: the report's timestamp.
	nj := decode(t, "periodic-daily_no_jobs_branch_with_slash.json")
	if len(nj.Builds) != 0 || nj.Timestamp.IsZero() {
		t.Fatalf("sample changed: %d builds, timestamp %v", len(nj.Builds), nj.Timestamp)
	}
	if got := lastrun.EndTime(nj); !got.Equal(nj.Timestamp) {
		t.Errorf("NO_JOBS end time %v, want the report's timestamp %v", got, nj.Timestamp)
	}
}

func TestMaxSeries(t *testing.T) {
	g := lastrun.New(clock)
	for i := range lastrun.MaxSeries + 10 {
		g.Observe("t", "p"+string(rune('a'+i%26))+strings.Repeat("x", i/26), now)
	}
	if n := testutil.CollectAndCount(g); n != lastrun.MaxSeries {
		t.Fatalf("%d series, want the bound %d", n, lastrun.MaxSeries)
	}
}

// TestBothSourcesThroughTheDispatcher: an MQTT report that no route wants and an event
// submitted from zuul-web both move the gauge, to the buildset's end time, and an older
// buildset submitted later does not move it back.
func TestBothSourcesThroughTheDispatcher(t *testing.T) {
	g := lastrun.New(clock)
	reg := prometheus.NewRegistry()
	reg.MustRegister(g)
	d := delivery.New(delivery.Options{Log: zerolog.Nop(), Observe: g.ObserveEvent}) // no routes: all filtered
	t.Cleanup(func() { d.Drain(context.Background()) })

	acked := make(chan struct{}, 1)
	d.Handle(delivery.Message{Topic: "zuul/scs/periodic-daily", Payload: samples.Get("periodic-daily_success.json"),
		Ack: func() error { acked <- struct{}{}; return nil }})
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("MQTT report not acknowledged")
	}
	mqttEnd := last(t, g, "scs", "periodic-daily")
	if mqttEnd.Unix() != 1736830440 {
		t.Fatalf("MQTT success: %v, want its build's end 1736830440", mqttEnd)
	}

	rest := func(uuid string, end time.Time) *zuul.Event {
		t.Helper()
		var bs zuulweb.Buildset
		bs.UUID, bs.Result, bs.Pipeline = uuid, "SUCCESS", "periodic-daily"
		bs.EventTimestamp.Time, bs.LastBuildEndTime.Time = end.Add(-time.Hour), end
		ev, err := zuulweb.ToEvent("scs", &bs)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	older := mqttEnd.Add(-24 * time.Hour).Truncate(time.Second)
	if err := d.Submit(context.Background(), rest("0ld", older)); err != nil {
		t.Fatal(err)
	}
	if got := last(t, g, "scs", "periodic-daily"); !got.Equal(mqttEnd) {
		t.Fatalf("an older buildset from zuul-web moved the gauge back to %v", got)
	}
	newer := mqttEnd.Add(24 * time.Hour).Truncate(time.Second)
	if err := d.Submit(context.Background(), rest("new", newer)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(g); got != float64(newer.Unix()) {
		t.Fatalf("after the newer success from zuul-web: %v, want its end %d", got, newer.Unix())
	}
}
