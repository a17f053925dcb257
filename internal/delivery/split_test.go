package delivery

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// A route that splits delivers one event per matching job, with the job's id, to each
// of its targets, on the batch path (Handle with a Starter) and the full path (Submit);
// a route that does not split gets the report; Settled sees the report once.
func TestSplitRouteDeliversPerJob(t *testing.T) {
	failedJob := func(ev *zuul.Event) bool {
		return ev.Outcome == zuul.OutcomeFailure && strings.HasPrefix(ev.Job, "scs-check-subject-0")
	}
	for _, path := range []string{"Handle", "Submit"} {
		t.Run(path, func(t *testing.T) {
			jobs, whole := &starterSink{}, &starterSink{}
			var settled []string
			var mu sync.Mutex
			o := fastOptions(
				Route{Name: "per-job", Match: failedJob, Split: (*zuul.Event).SplitJobs, Targets: []Target{{"nats", jobs}}},
				Route{Name: "whole", Match: failing, Targets: []Target{{"nats", whole}}},
			)
			o.Settled = func(ev *zuul.Event, applied bool) {
				mu.Lock()
				settled = append(settled, ev.ID)
				mu.Unlock()
			}
			p := New(o)
			b := payload(t, "periodic-daily_failure_large_buildset.json")
			ev, _ := zuul.Decode(b)
			if path == "Handle" {
				acks := newAcks()
				p.Handle(acks.msg(t, "r", b))
				acks.wait(t, "r")
			} else if err := p.Submit(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			drain(t, p)
			var want []string
			for _, je := range ev.SplitJobs() {
				if failedJob(je) {
					want = append(want, je.ID)
				}
			}
			got := append(append([]string(nil), jobs.starts...), jobs.sends...)
			slices.Sort(got)
			slices.Sort(want)
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("per-job route got %v, want %v", got, want)
			}
			if n := len(whole.starts) + len(whole.sends); n != 1 {
				t.Errorf("the whole-report route got %d deliveries, want 1", n)
			}
			if !slices.Equal(settled, []string{ev.ID}) {
				t.Errorf("settled %v, want the report once", settled)
			}
		})
	}
}

// A job event that fails for good is dead-lettered with its own id; the other jobs of
// the report are delivered.
func TestSplitRouteDeadLettersPerJob(t *testing.T) {
	var mu sync.Mutex
	var sent, dead []string
	sink := sinkFunc(func(_ context.Context, ev *zuul.Event) (bool, error) {
		if ev.Job == "scs-check-subject-009" {
			return false, errors.New("refused")
		}
		mu.Lock()
		sent = append(sent, ev.Job)
		mu.Unlock()
		return false, nil
	})
	o := fastOptions(Route{Name: "per-job", Match: failing, Split: (*zuul.Event).SplitJobs, Targets: []Target{{"test", sink}}})
	o.DeadLetter = func(_ context.Context, dl DeadLetter) error {
		mu.Lock()
		dead = append(dead, dl.ID)
		mu.Unlock()
		return nil
	}
	p := New(o)
	acks := newAcks()
	b := payload(t, "periodic-daily_failure_large_buildset.json")
	ev, _ := zuul.Decode(b)
	p.Handle(acks.msg(t, "r", b))
	acks.wait(t, "r")
	drain(t, p)
	if !slices.Equal(dead, []string{ev.ID + "/scs-check-subject-009"}) {
		t.Errorf("dead letters %v", dead)
	}
	if len(sent) != 15 {
		t.Errorf("delivered %d job events, want the other 15 failing voting jobs", len(sent))
	}
}
