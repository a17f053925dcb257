package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/logging"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TestLogDurationsAreGoDurations: the retry backoff and the deadline of a delivery that
// keeps failing are logged as Go durations ("12ms", "40ms"), strings in the JSON format and
// in the console format alike, the backoff rounded to the millisecond; not zerolog's
// numbers of milliseconds (58340.093808).
func TestLogDurationsAreGoDurations(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			var logs syncBuffer
			sink := sinkFunc(func(context.Context, *zuul.Event) (bool, error) { return true, errors.New("503") })
			o := fastOptions(Route{Name: "r", Match: failing, Targets: []Target{{"test", sink}}})
			o.BackoffMin, o.BackoffMax, o.Deadline = 7*time.Millisecond, 13*time.Millisecond, 40*time.Millisecond
			o.Log = logging.New(&logs, format, "info")
			p := New(o)
			acks := newAcks()
			p.Handle(acks.msg(t, "t", payload(t, "periodic-daily_failure_mixed.json")))
			acks.wait(t, "t")
			drain(t, p)
			out := logs.String()
			var backoffs, deadlines []string
			if format == "json" {
				for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
					var e map[string]any
					if err := json.Unmarshal([]byte(line), &e); err != nil {
						t.Fatalf("not a JSON line: %q", line)
					}
					for key, into := range map[string]*[]string{"backoff": &backoffs, "deadline": &deadlines} {
						if v, ok := e[key]; ok {
							s, isString := v.(string)
							if !isString {
								t.Fatalf("%s is %T %v, want a duration string: %s", key, v, v, line)
							}
							*into = append(*into, s)
						}
					}
				}
			} else {
				for _, m := range regexp.MustCompile(`backoff=(\S+)`).FindAllStringSubmatch(out, -1) {
					backoffs = append(backoffs, m[1])
				}
				for _, m := range regexp.MustCompile(`deadline=(\S+)`).FindAllStringSubmatch(out, -1) {
					deadlines = append(deadlines, m[1])
				}
			}
			if len(backoffs) == 0 || len(deadlines) != 1 {
				t.Fatalf("want retries with a backoff and one deadline line, got %q and %q:\n%s", backoffs, deadlines, out)
			}
			for _, s := range backoffs {
				d, err := time.ParseDuration(s)
				if err != nil || d != d.Round(time.Millisecond) || d < o.BackoffMin/2 || d > o.BackoffMax {
					t.Errorf("backoff %q: want a Go duration in whole milliseconds within [%v, %v]", s, o.BackoffMin/2, o.BackoffMax)
				}
			}
			if deadlines[0] != "40ms" {
				t.Errorf("deadline %q, want 40ms", deadlines[0])
			}
		})
	}
}
