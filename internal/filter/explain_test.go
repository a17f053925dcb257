package filter_test

import (
	"fmt"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/filter"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func TestExplain(t *testing.T) {
	many := with(func(e *zuul.Event) {
		e.Builds = nil
		for i := range 12 {
			e.Builds = append(e.Builds, zuul.Build{JobName: fmt.Sprintf("job-%d", i), Result: "SUCCESS"})
		}
	})
	tests := []struct {
		name           string
		match, exclude *filter.Spec
		ev             *zuul.Event
		want           string
		wantOK         bool
	}{
		{"pipeline mismatch", &filter.Spec{Pipeline: p("periodic-*", "compliance_check")}, nil,
			with(func(e *zuul.Event) { e.Pipeline = "check" }),
			`pipeline "check" matches none of [periodic-* compliance_check]`, false},
		{"every failing field", &filter.Spec{Tenant: p("openstack"), Pipeline: p("check")}, nil, periodicFailure(),
			`pipeline "periodic-daily" matches none of [check]; tenant "scs" matches none of [openstack]`, false},
		{"result mismatch", &filter.Spec{Result: p("success", "POST_FAILURE")}, nil, periodicFailure(),
			`result "FAILURE" (outcome failure, build results [FAILURE SUCCESS SKIPPED]) matches none of [success POST_FAILURE]`, false},
		{"job mismatch, long list cut", &filter.Spec{Job: p("scs-*")}, nil, many,
			`jobs [job-0 job-1 job-2 job-3 job-4 job-5 job-6 job-7 ... 4 more] match none of [scs-*]`, false},
		{"excluded", &filter.Spec{Pipeline: p("periodic-*")}, &filter.Spec{Branch: p("stable/*", "main")}, periodicFailure(),
			`excluded by exclude.branch "main" (branch "main")`, false},
		{"excluded by two fields", nil, &filter.Spec{Branch: p("main"), Job: p("*-lint")}, periodicFailure(),
			`excluded by exclude.branch "main" (branch "main") and exclude.job "*-lint" (job "k8s-cluster-api-provider-lint")`, false},
		{"matched", &filter.Spec{Pipeline: p("compliance_check", "periodic-*"), Result: p("failure")}, nil, periodicFailure(),
			`matched: pipeline "periodic-daily" by "periodic-*", outcome failure by "failure"`, true},
		{"matched by build result and job", &filter.Spec{Result: p("*_FAILURE", "FAILURE"), Job: p("*-e2e-*")}, nil, periodicFailure(),
			`matched: result "FAILURE" by "FAILURE", job "k8s-cluster-api-provider-e2e-quick" by "*-e2e-*"`, true},
		{"matched by build result", &filter.Spec{Result: p("SKIPPED")}, nil, periodicFailure(),
			`matched: build result "SKIPPED" of job "k8s-cluster-api-provider-docs" by "SKIPPED"`, true},
		{"matched, not excluded", &filter.Spec{Tenant: p("scs")}, &filter.Spec{Branch: p("stable/*")}, periodicFailure(),
			`matched: tenant "scs" by "scs"; not excluded: exclude.branch "main" matches none of [stable/*]`, true},
		{"no match fields", nil, nil, periodicFailure(), `matched: no match fields, every report matches`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := filter.Compile(tc.match, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			ok, why := m.Explain(tc.ev)
			if ok != tc.wantOK || why != tc.want {
				t.Errorf("Explain =\n%v %s\nwant\n%v %s", ok, why, tc.wantOK, tc.want)
			}
		})
	}
}
