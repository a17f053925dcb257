package filter_test

import (
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/filter"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// periodicFailure is an SCS nightly check that failed in a voting job.
func periodicFailure() *zuul.Event {
	return &zuul.Event{
		Action: "failure", Tenant: "scs", Pipeline: "periodic-daily",
		Project: "SovereignCloudStack/k8s-cluster-api-provider", Branch: "main",
		Result: "FAILURE", Outcome: zuul.OutcomeFailure,
		Builds: []zuul.Build{
			{JobName: "k8s-cluster-api-provider-e2e-quick", Voting: true, Result: "FAILURE"},
			{JobName: "k8s-cluster-api-provider-lint", Voting: true, Result: "SUCCESS"},
			{JobName: "k8s-cluster-api-provider-docs", Voting: false, Result: "SKIPPED"},
		},
	}
}

// with returns a copy of periodicFailure changed by fn.
func with(fn func(*zuul.Event)) *zuul.Event {
	ev := periodicFailure()
	fn(ev)
	return ev
}

func TestMatch(t *testing.T) {
	success := with(func(e *zuul.Event) {
		e.Action, e.Result, e.Outcome = "success", "SUCCESS", zuul.OutcomeSuccess
		for i := range e.Builds {
			e.Builds[i].Result = "SUCCESS"
		}
	})
	// A successful buildset whose non-voting job ended in POST_FAILURE.
	nonVotingPost := with(func(e *zuul.Event) {
		e.Action, e.Result, e.Outcome = "success", "SUCCESS", zuul.OutcomeSuccess
		e.Builds[0].Result = "SUCCESS"
		e.Builds[2].Result = "POST_FAILURE"
	})
	start := with(func(e *zuul.Event) {
		e.Action, e.Result, e.Outcome = "start", "", zuul.OutcomePending
		for i := range e.Builds {
			e.Builds[i].Result = ""
		}
	})
	noJobs := with(func(e *zuul.Event) {
		e.Action, e.Result, e.Outcome, e.Builds = "no-jobs", "NO_JOBS", zuul.OutcomeNeutral, nil
	})
	mergeConflict := with(func(e *zuul.Event) { e.Result, e.Builds = "MERGE_CONFLICT", nil })
	zuulJobs := with(func(e *zuul.Event) {
		e.Tenant, e.Pipeline, e.Project, e.Branch = "openstack", "check", "opendev.org/zuul/zuul-jobs", "stable/2024.1"
	})
	freeText := with(func(e *zuul.Event) { e.Builds[0].Result = "Failed: see the logs" })

	tests := []struct {
		name    string
		match   *filter.Spec
		exclude *filter.Spec
		ev      *zuul.Event
		want    bool
	}{
		{"nil match takes everything", nil, nil, start, true},
		{"empty match takes everything", &filter.Spec{}, nil, noJobs, true},
		{"exact pipeline", &filter.Spec{Pipeline: p("periodic-daily")}, nil, periodicFailure(), true},
		{"exact is case-sensitive", &filter.Spec{Pipeline: p("Periodic-daily")}, nil, periodicFailure(), false},
		{"exact is whole value", &filter.Spec{Pipeline: p("periodic")}, nil, periodicFailure(), false},
		{"glob pipeline", &filter.Spec{Pipeline: p("periodic-*")}, nil, periodicFailure(), true},
		{"list is any of (second)", &filter.Spec{Pipeline: p("compliance_check", "periodic-*")}, nil, periodicFailure(), true},
		{"list is any of (none)", &filter.Spec{Pipeline: p("compliance_check", "periodic-hourly")}, nil, periodicFailure(), false},
		{"fields are AND (both)", &filter.Spec{Pipeline: p("periodic-*"), Project: p("SovereignCloudStack/*")}, nil, periodicFailure(), true},
		{"fields are AND (one fails)", &filter.Spec{Pipeline: p("periodic-*"), Tenant: p("openstack")}, nil, periodicFailure(), false},
		{"tenant", &filter.Spec{Tenant: p("scs")}, nil, periodicFailure(), true},
		{"star crosses slashes in project", &filter.Spec{Project: p("opendev.org/*")}, nil, zuulJobs, true},
		{"star crosses slashes in middle", &filter.Spec{Project: p("*/zuul-jobs")}, nil, zuulJobs, true},
		{"star crosses slashes in branch", &filter.Spec{Branch: p("stable/*")}, nil, zuulJobs, true},
		{"question mark", &filter.Spec{Branch: p("stable/202?.?")}, nil, zuulJobs, true},
		{"class", &filter.Spec{Branch: p("stable/202[3-5].[12]")}, nil, zuulJobs, true},
		{"negated class", &filter.Spec{Branch: p("stable/202[!4].1")}, nil, zuulJobs, false},
		{"empty branch of a tag is not main", &filter.Spec{Branch: p("main")}, nil, with(func(e *zuul.Event) { e.Branch = "" }), false},
		{"star matches empty branch", &filter.Spec{Branch: p("*")}, nil, with(func(e *zuul.Event) { e.Branch = "" }), true},
		{"action", &filter.Spec{Action: p("failure", "merge-conflict")}, nil, periodicFailure(), true},
		{"action is not outcome", &filter.Spec{Action: p("failure")}, nil, success, false},
		{"action glob", &filter.Spec{Action: p("merge-*")}, nil, with(func(e *zuul.Event) { e.Action = "merge-conflict" }), true},

		// result classes compare with the outcome.
		{"class failure", &filter.Spec{Result: p("failure")}, nil, periodicFailure(), true},
		{"class failure on merge conflict", &filter.Spec{Result: p("failure")}, nil, mergeConflict, true},
		{"class failure not on success", &filter.Spec{Result: p("failure")}, nil, success, false},
		{"class failure not on start", &filter.Spec{Result: p("failure")}, nil, start, false},
		{"class failure not on non-voting failure", &filter.Spec{Result: p("failure")}, nil, nonVotingPost, false},
		{"class success", &filter.Spec{Result: p("success")}, nil, success, true},
		{"class neutral", &filter.Spec{Result: p("neutral")}, nil, noJobs, true},
		{"class pending", &filter.Spec{Result: p("pending")}, nil, start, true},
		{"classes are any of", &filter.Spec{Result: p("success", "failure")}, nil, success, true},
		{"class and value mixed", &filter.Spec{Result: p("neutral", "POST_FAILURE")}, nil, nonVotingPost, true},

		// Upper-case values compare with the buildset result or any build's result.
		{"value buildset result", &filter.Spec{Result: p("MERGE_CONFLICT")}, nil, mergeConflict, true},
		{"value build result", &filter.Spec{Result: p("POST_FAILURE")}, nil, nonVotingPost, true},
		{"value FAILURE differs from class", &filter.Spec{Result: p("FAILURE")}, nil, with(func(e *zuul.Event) {
			e.Result, e.Outcome = "SUCCESS", zuul.OutcomeSuccess
			e.Builds[0].Voting = false
		}), true},
		{"value none", &filter.Spec{Result: p("POST_FAILURE", "TIMED_OUT")}, nil, periodicFailure(), false},
		{"value glob", &filter.Spec{Result: p("*FAILURE")}, nil, nonVotingPost, true},
		{"value glob none", &filter.Spec{Result: p("*FAILURE")}, nil, success, false},
		{"value is case-sensitive", &filter.Spec{Result: p("Failure")}, nil, periodicFailure(), false},
		{"star value not on start report", &filter.Spec{Result: p("*")}, nil, start, false},
		{"star value on final report", &filter.Spec{Result: p("*")}, nil, success, true},
		{"free-text build result", &filter.Spec{Result: p("Failed: *")}, nil, freeText, true},

		// job: any build.
		{"job exact", &filter.Spec{Job: p("k8s-cluster-api-provider-lint")}, nil, periodicFailure(), true},
		{"job glob any build", &filter.Spec{Job: p("*-docs")}, nil, periodicFailure(), true},
		{"job none", &filter.Spec{Job: p("scs-compliance-*")}, nil, periodicFailure(), false},
		{"job without builds", &filter.Spec{Job: p("*")}, nil, noJobs, false},

		// exclude drops what match took, with the same AND/OR rules.
		{"exclude holds", &filter.Spec{Pipeline: p("periodic-*")}, &filter.Spec{Branch: p("main")}, periodicFailure(), false},
		{"exclude glob holds", nil, &filter.Spec{Branch: p("stable/*")}, zuulJobs, false},
		{"exclude list any of", nil, &filter.Spec{Branch: p("x", "stable/*")}, zuulJobs, false},
		{"exclude does not hold", &filter.Spec{Pipeline: p("periodic-*")}, &filter.Spec{Branch: p("stable/*")}, periodicFailure(), true},
		{"exclude is AND: one field fails", nil, &filter.Spec{Branch: p("main"), Project: p("other/*")}, periodicFailure(), true},
		{"exclude is AND: all hold", nil, &filter.Spec{Branch: p("main"), Project: p("SovereignCloudStack/*")}, periodicFailure(), false},
		{"exclude by job", nil, &filter.Spec{Job: p("*-e2e-*")}, periodicFailure(), false},
		{"exclude by result class", &filter.Spec{Pipeline: p("periodic-*")}, &filter.Spec{Result: p("neutral", "pending")}, noJobs, false},
		{"exclude by value keeps others", nil, &filter.Spec{Result: p("NODE_FAILURE")}, periodicFailure(), true},
		{"empty exclude excludes nothing", nil, &filter.Spec{}, periodicFailure(), true},
		{"exclude irrelevant when match fails", &filter.Spec{Tenant: p("x")}, &filter.Spec{Tenant: p("y")}, periodicFailure(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := filter.Compile(tc.match, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Match(tc.ev); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
			got, reason := m.Explain(tc.ev)
			if got != tc.want {
				t.Errorf("Explain = %v (%s), want %v", got, reason, tc.want)
			}
			if reason == "" || strings.Contains(reason, "\n") {
				t.Errorf("Explain reason %q is not one line", reason)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		match   *filter.Spec
		exclude *filter.Spec
		want    []string
	}{
		{"unknown class", &filter.Spec{Result: p("failur")}, nil, []string{
			`match.result: unknown result class "failur" (classes: success, failure, neutral, pending; exact Zuul values are upper-case, e.g. POST_FAILURE)`,
		}},
		{"lower-case Zuul value", &filter.Spec{Result: p("post_failure")}, nil, []string{
			`match.result: unknown result class "post_failure"`, `did you mean "POST_FAILURE"?`,
		}},
		{"lower-case glob", nil, &filter.Spec{Result: p("fail*")}, []string{`exclude.result: unknown result class "fail*"`}},
		{"bad glob", nil, &filter.Spec{Project: p("[abc")}, []string{`exclude.project: bad glob "[abc": unterminated [`}},
		{"bad range", &filter.Spec{Branch: p("[z-a]")}, nil, []string{`match.branch: bad glob "[z-a]": range z-a out of order`}},
		{"empty pattern", &filter.Spec{Job: p("")}, nil, []string{`match.job: empty pattern`}},
		{"every problem at once", &filter.Spec{Pipeline: p("ok", "[x"), Result: p("sucess")}, &filter.Spec{Tenant: p("a\\")}, []string{
			`match.pipeline: bad glob "[x"`, `match.result: unknown result class "sucess"`, `exclude.tenant: bad glob "a\\": trailing \`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := filter.Compile(tc.match, tc.exclude)
			if err == nil {
				t.Fatalf("Compile = %v, want error", m)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) && tc.name == "every problem at once" {
				t.Errorf("%d error lines, want %d:\n%s", n, len(tc.want), err)
			}
		})
	}
}

func TestValidResultPatterns(t *testing.T) {
	// Upper-case values, globs and free text compile; only lower-case words are checked.
	for _, r := range []string{"success", "failure", "neutral", "pending", "POST_FAILURE", "*FAILURE",
		"NODE_FAILURE", "Failed: see the logs", "job failed, see logs", "[A-Z]*"} {
		if _, err := filter.Compile(&filter.Spec{Result: p(r)}, nil); err != nil {
			t.Errorf("result %q: %v", r, err)
		}
	}
}

// TestCompileCopies checks that a Matcher does not change when the caller reuses its Spec.
func TestCompileCopies(t *testing.T) {
	s := &filter.Spec{Pipeline: p("periodic-daily")}
	m, err := filter.Compile(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Pipeline[0] = "check"
	if ok, why := m.Explain(periodicFailure()); !ok || !strings.Contains(why, `"periodic-daily"`) {
		t.Errorf("Explain = %v, %s", ok, why)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	m, err := filter.Compile(&filter.Spec{
		Pipeline: p("periodic-daily", "compliance_check"), Project: p("SovereignCloudStack/*"),
		Result: p("failure", "POST_FAILURE"), Job: p("*-e2e-*"),
	}, &filter.Spec{Branch: p("stable/*")})
	if err != nil {
		t.Fatal(err)
	}
	ev := periodicFailure()
	if n := testing.AllocsPerRun(100, func() { m.Match(ev) }); n != 0 {
		t.Errorf("Match allocates %v times per call", n)
	}
}

func p(s ...string) filter.Patterns { return filter.Patterns(s) }

func TestMayMatch(t *testing.T) {
	m, err := filter.Compile(&filter.Spec{Tenant: filter.Patterns{"scs"}, Pipeline: filter.Patterns{"periodic-*"}, Project: filter.Patterns{"x/y"}, Result: filter.Patterns{"failure"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tenant, pipeline string
		want             bool
	}{{"scs", "periodic-daily", true}, {"scs", "check", false}, {"other", "periodic-daily", false}} {
		if got := m.MayMatch(c.tenant, c.pipeline); got != c.want {
			t.Errorf("MayMatch(%s, %s) = %v", c.tenant, c.pipeline, got)
		}
	}
	all, _ := filter.Compile(nil, nil)
	if !all.MayMatch("any", "thing") {
		t.Error("an empty match block may match every pipeline")
	}
}
