package incident_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// jobEvent is the per-job event of job in buildset n (as zuul.Event.SplitJobs makes it).
func jobEvent(n int, job, result string, ts time.Time) *zuul.Event {
	bs := &zuul.Event{
		ID: fmt.Sprintf("bs%d-FAILURE", n), Timestamp: ts, Action: "failure", Tenant: "scs", Pipeline: "periodic-daily",
		Project: "SovereignCloudStack/standards", Branch: "main", Result: "FAILURE", Outcome: zuul.OutcomeFailure,
		BuildsetUUID: fmt.Sprintf("bs%d", n), BuildsetURL: fmt.Sprintf("https://zuul.scs.community/t/scs/buildset/bs%d", n),
		Builds: []zuul.Build{{JobName: job, Voting: true, Result: result,
			LogURL: fmt.Sprintf("https://logs.scs.community/%d/%s/", n, job), WebURL: fmt.Sprintf("https://zuul.scs.community/t/scs/build/%d%s", n, job)}},
	}
	return bs.SplitJobs()[0]
}

func perJob(c *incident.RouteConfig) {
	c.PerJob = true
	c.Component = `{{ .Job | trimPrefix "scs-check-" | trimSuffix "-main" }}`
	c.Components = []incident.ComponentRule{{Job: "scs-check-zuul-*", Component: "Zuul"}}
}

// A per-job route opens one incident per failing job on the component derived from the
// job's name, with texts in plain words; a job whose component the page lacks waits
// (Ready and Send say so, retryably, naming it) and holds nothing else back; the job's
// success resolves its incident only.
func TestPerJobIncidents(t *testing.T) {
	e := newEnv(t, statuspagefakeOptions(), perJob)
	gx := jobEvent(1, "scs-check-gx-scs-main", "FAILURE", hours(0))
	other := jobEvent(1, "scs-check-poc-wgcloud-main", "POST_FAILURE", hours(0))
	zuulJob := jobEvent(1, "scs-check-zuul-x", "TIMED_OUT", hours(0))

	err := e.sink.Ready(other)
	if err == nil || !errors.Is(err, incident.ErrUnknownComponent) || !strings.Contains(err.Error(), `"poc-wgcloud"`) {
		t.Fatalf("Ready(unknown component) = %v", err)
	}
	if retry, err := e.sink.Send(context.Background(), other); err == nil || !retry {
		t.Fatalf("Send(unknown component) = %v, %v; want a retryable error", retry, err)
	}
	if u := e.sink.UnknownComponents(); len(u) != 1 || u["poc-wgcloud"] == "" {
		t.Errorf("UnknownComponents = %v", u)
	}
	if err := e.sink.Ready(gx); err != nil {
		t.Fatalf("Ready(gx-scs) = %v", err)
	}
	e.send(gx)
	e.send(zuulJob)
	incs := e.incidents()
	if len(incs) != 2 {
		t.Fatalf("%d incidents, want 2", len(incs))
	}
	byComp := map[string]int{}
	for i, inc := range incs {
		for _, a := range inc.Affects {
			switch a.Reference {
			case e.fake.ComponentID("gx-scs"):
				byComp["gx-scs"] = i
			case e.fake.ComponentID("Zuul"):
				byComp["Zuul"] = i
			}
		}
	}
	g := incs[byComp["gx-scs"]]
	eq(t, "title", g.DisplayName, "SCS compliance check of gx-scs")
	eq(t, "description", g.Description, "The SCS compliance check of gx-scs (job scs-check-gx-scs-main) started failing on "+
		"21 Nov 2026 at 10:00 UTC. Details: https://zuul.scs.community/t/scs/build/1scs-check-gx-scs-main")
	eq(t, "Zuul title", incs[byComp["Zuul"]].DisplayName, "SCS compliance check of Zuul")
	if !strings.Contains(incs[byComp["Zuul"]].Description, "it timed out") {
		t.Errorf("Zuul description: %q", incs[byComp["Zuul"]].Description)
	}

	// The next night gx-scs passes: its incident ends; Zuul's stays open; a redelivery
	// of the first night changes nothing.
	e.send(jobEvent(2, "scs-check-gx-scs-main", "SUCCESS", hours(24)))
	e.send(jobEvent(2, "scs-check-zuul-x", "TIMED_OUT", hours(24)))
	if calls := e.calls(func() { e.send(gx) }); len(calls) != 0 {
		t.Errorf("redelivery made calls %v", calls)
	}
	for _, inc := range e.incidents() {
		ended := inc.EndedAt != nil
		if inc.ID == g.ID != ended {
			t.Errorf("incident %q ended=%v", inc.DisplayName, ended)
		}
	}
	if k1, k2 := e.sink.KeyOf(gx), e.sink.KeyOf(zuulJob); k1 == k2 {
		t.Error("two jobs share an incident key")
	}
}

func TestPerJobConfigErrors(t *testing.T) {
	c := incident.DefaultRouteConfig()
	c.Components = []incident.ComponentRule{{Job: "[x", Component: "a"}, {Job: "y"}}
	err := c.Validate()
	for _, want := range []string{"components: maps jobs to components: it needs `split: jobs`", `components[0].job: bad glob "[x"`,
		"components[1]: set component or component_labels"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	c = incident.DefaultRouteConfig()
	c.PerJob = true
	c.Component = "{{ .Jobb }}"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "component: ") || !strings.Contains(err.Error(), "Jobb") {
		t.Errorf("a misspelt template field: %v", err)
	}
	c = incident.DefaultRouteConfig()
	c.PerJob = true
	c.Component = "Zuul"
	if err := c.Validate(); err != nil || c.Key[len(c.Key)-1] != "job" {
		t.Errorf("per-job key %v, err %v", c.Key, err)
	}
}

// A job removed from the pipeline sends no more reports: its incident ends by the quiet
// period, while a job that keeps failing keeps its own open.
func TestPerJobRemovedJobEndsByQuietPeriod(t *testing.T) {
	e := newEnv(t, statuspagefakeOptions(), func(c *incident.RouteConfig) { perJob(c); c.QuietPeriod = 36 * time.Hour })
	e.send(jobEvent(1, "scs-check-gx-scs-main", "FAILURE", hours(0)))
	e.send(jobEvent(1, "scs-check-zuul-x", "FAILURE", hours(0)))
	for night := 2; night <= 3; night++ { // gx-scs's job is gone; Zuul's still fails
		e.send(jobEvent(night, "scs-check-zuul-x", "FAILURE", hours(24*(night-1))))
	}
	e.clock.Set(hours(48))
	if err := e.m.ResolveQuiet(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, inc := range e.incidents() {
		gx := inc.Affects[0].Reference == e.fake.ComponentID("gx-scs")
		if ended := inc.EndedAt != nil; ended != gx {
			t.Errorf("incident %q ended=%v; want only the removed job's ended", inc.DisplayName, ended)
		}
		if gx && (len(inc.Updates) != 1 || !strings.Contains(inc.Updates[0].Description, "No failure was reported for 36 hours")) {
			t.Errorf("gx-scs closing: %+v", inc.Updates)
		}
	}
}
