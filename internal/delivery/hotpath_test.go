package delivery

import (
	"context"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// syncBuffer is a log sink the code under test and the test share.
type syncBuffer = testenv.Buffer

// A routine delivery is a counter and a debug event: nothing at info, the production level;
// at debug the event names the route, sink and report. The delivered counter counts every
// delivery, through the cached series, on both routes.
func TestDeliveredIsDebugAndCounted(t *testing.T) {
	ok := sinkFunc(func(context.Context, *zuul.Event) (bool, error) { return false, nil })
	for _, level := range []zerolog.Level{zerolog.InfoLevel, zerolog.DebugLevel} {
		t.Run(level.String(), func(t *testing.T) {
			var logs syncBuffer
			o := fastOptions(
				Route{Name: "a", Match: failing, Targets: []Target{{"test", ok}}},
				Route{Name: "b", Match: failing, Targets: []Target{{"test", ok}}},
			)
			o.Log = zerolog.New(&logs).Level(level)
			p := New(o)
			acks := newAcks()
			for _, topic := range []string{"one", "two", "three"} {
				p.Handle(acks.msg(t, topic, payload(t, "periodic-daily_failure_mixed.json")))
				acks.wait(t, topic)
			}
			if err := p.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, route := range []string{"a", "b"} {
				if got := testutil.ToFloat64(o.Metrics.deliveries.WithLabelValues(route, "test", "delivered")); got != 3 {
					t.Errorf("route %s: delivered counter %v, want 3", route, got)
				}
				if got := testutil.ToFloat64(o.Metrics.matched.WithLabelValues(route)); got != 3 {
					t.Errorf("route %s: matched counter %v, want 3", route, got)
				}
			}
			n := strings.Count(logs.String(), `"message":"delivered"`)
			want := 0
			if level == zerolog.DebugLevel {
				want = 6
				if !strings.Contains(logs.String(), `"level":"debug","route":"a","sink":"test"`) {
					t.Errorf("debug event lacks route and sink:\n%s", logs.String())
				}
			}
			if n != want {
				t.Errorf("%d delivered events at level %s, want %d:\n%s", n, level, want, logs.String())
			}
		})
	}
}
