package filter_test

import (
	"fmt"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/filter"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// benchRoutes is a rules file of 50 routes the way an operator might write it: exact names,
// globs and lists, a few excludes, some routes that reject on the first field and some that
// must walk every build of the report.
func benchRoutes(b *testing.B) []*filter.Matcher {
	var specs [][2]*filter.Spec
	for i := range 10 {
		specs = append(specs,
			// periodic failures of one project to chat
			[2]*filter.Spec{{
				Pipeline: p("periodic-daily", "periodic-hourly", "periodic-weekly"),
				Project:  p(fmt.Sprintf("SovereignCloudStack/project-%d", i), "SovereignCloudStack/k8s-cluster-api-provider"),
				Result:   p("failure"),
			}, nil},
			// glob on project and pipeline, exclude stable branches
			[2]*filter.Spec{{
				Pipeline: p("periodic-*", "compliance_check"),
				Project:  p(fmt.Sprintf("SovereignCloudStack/*-%d", i)),
			}, {Branch: p("stable/*")}},
			// another tenant: rejected by the first check
			[2]*filter.Spec{{
				Tenant:   p(fmt.Sprintf("tenant-%d", i)),
				Pipeline: p("check", "gate"),
			}, nil},
			// job and exact result values: walks all builds when nothing matches
			[2]*filter.Spec{{
				Pipeline: p("periodic-daily"),
				Job:      p(fmt.Sprintf("scs-compliance-%d-*", i), fmt.Sprintf("*-e2e-%d", i)),
				Result:   p("POST_FAILURE", "NODE_FAILURE", "*TIMED_OUT"),
			}, {Branch: p("stable/*"), Action: p("dequeue")}},
			// status page route: every final report of the watched pipelines
			[2]*filter.Spec{{
				Pipeline: p("periodic-daily", "compliance_check"),
				Result:   p("success", "failure"),
				Action:   p("success", "failure", "merge-conflict", "config-error"),
			}, {Job: p(fmt.Sprintf("noisy-job-%d", i))}},
		)
	}
	ms := make([]*filter.Matcher, 0, len(specs))
	for _, s := range specs {
		m, err := filter.Compile(s[0], s[1])
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

func benchEvent(builds int) *zuul.Event {
	ev := &zuul.Event{
		Action: "failure", Tenant: "scs", Pipeline: "periodic-daily",
		Project: "SovereignCloudStack/k8s-cluster-api-provider", Branch: "main",
		Result: "FAILURE", Outcome: zuul.OutcomeFailure,
	}
	for i := range builds {
		r := "SUCCESS"
		if i == builds-1 {
			r = "FAILURE"
		}
		ev.Builds = append(ev.Builds, zuul.Build{
			JobName: fmt.Sprintf("k8s-cluster-api-provider-job-%03d", i), Voting: true, Result: r,
		})
	}
	return ev
}

func BenchmarkMatch50Routes(b *testing.B) {
	ms := benchRoutes(b)
	for _, n := range []int{3, 120} {
		ev := benchEvent(n)
		b.Run(fmt.Sprintf("builds=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			matched := 0
			for b.Loop() {
				matched = 0
				for _, m := range ms {
					if m.Match(ev) {
						matched++
					}
				}
			}
			b.ReportMetric(float64(matched), "matched/op")
		})
	}
}
