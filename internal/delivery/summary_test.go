package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TestOneSummaryLinePerReport: at ReportLevel every decoded report gets exactly one line
// saying what became of it: kept by which routes, kept but dead-lettered for a sink, or
// dropped because no route matches; at the default (debug) a logger at info shows none.
func TestOneSummaryLinePerReport(t *testing.T) {
	ok := sinkFunc(func(context.Context, *zuul.Event) (bool, error) { return false, nil })
	bad := sinkFunc(func(_ context.Context, ev *zuul.Event) (bool, error) {
		if ev.Project == "SovereignCloudStack/standards" {
			return false, errors.New("400 Bad Request")
		}
		return false, nil
	})
	periodic := func(ev *zuul.Event) bool { return failing(ev) && strings.HasPrefix(ev.Pipeline, "periodic-") }
	routes := []Route{
		{Name: "chat", Match: periodic, Targets: []Target{{"nats", ok}}},
		{Name: "page", Match: periodic, Targets: []Target{{"statuspage", bad}}},
	}
	// k8s-cluster-api-provider, kept; standards, refused by the status page; a success and
	// a check pipeline's failure, which no route wants.
	reports := []string{"periodic-daily_failure_mixed.json", "periodic-daily_timed_out.json", "periodic-daily_success.json", "check_failure_pr.json"}
	for _, level := range []zerolog.Level{zerolog.InfoLevel, zerolog.DebugLevel} {
		var logs syncBuffer
		o := fastOptions(routes...)
		o.Log = zerolog.New(&logs).Level(zerolog.InfoLevel)
		o.ReportLevel = level
		p := New(o)
		acks := newAcks()
		for _, name := range reports {
			p.Handle(acks.msg(t, name, payload(t, name)))
			acks.wait(t, name)
		}
		drain(t, p)
		var got []map[string]any
		for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && strings.HasPrefix(e["message"].(string), "report ") {
				got = append(got, e)
			}
		}
		if level == zerolog.DebugLevel {
			if len(got) != 0 {
				t.Errorf("ReportLevel debug, logger at info: %d summary lines:\n%s", len(got), logs.String())
			}
			continue
		}
		if len(got) != len(reports) {
			t.Fatalf("%d summary lines for %d reports:\n%s", len(got), len(reports), logs.String())
		}
		for i, want := range []struct{ msg, routes, result string }{
			{"report kept", "chat,page", "FAILURE"},
			{"report kept, but dead-lettered for some sinks", "chat,page", "FAILURE"},
			{"report dropped: no route matches", "", "SUCCESS"},
			{"report dropped: no route matches", "", "FAILURE"},
		} {
			e := got[i]
			if e["message"] != want.msg || e["level"] != "info" || e["result"] != want.result || want.routes != "" && e["routes"] != want.routes ||
				i == 1 && e["dead_lettered"] != "page/statuspage" {
				t.Errorf("report %s: %v, want %+v", reports[i], e, want)
			}
		}
	}
}
