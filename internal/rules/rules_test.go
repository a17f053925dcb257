package rules

import (
	"os"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func event(t *testing.T, name string) *zuul.Event {
	t.Helper()
	ev, err := zuul.Decode(samples.Get(name))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestDefaultRules: without a rules file the failing periodic reports, and nothing else,
// go to NATS.
func TestDefaultRules(t *testing.T) {
	routes, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || routes[0].NATS == nil || routes[0].StatusPage != nil {
		t.Fatalf("default routes %+v", routes)
	}
	kept := map[string]bool{
		"periodic-daily_failure_mixed.json":                     true,
		"periodic-hourly_post_failure.json":                     true,
		"periodic-daily_timed_out.json":                         true,
		"periodic-daily_config_error_via_failure_reporter.json": true,
		"periodic-daily_failure_large_buildset.json":            true,
		"legacy_zuul-4.6_periodic_failure.json":                 true,
	}
	for _, s := range samples.All() {
		got := routes[0].Match.Match(event(t, s.Name))
		if got != kept[s.Name] {
			t.Errorf("%s: kept=%v, want %v", s.Name, got, kept[s.Name])
		}
	}
}

func TestExampleFile(t *testing.T) {
	routes, err := LoadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 4 || !routes[3].SplitJobs || routes[2].StatusPage == nil || routes[2].StatusPage.Component != "Zuul" {
		t.Fatalf("routes %+v", routes)
	}
	if !routes[1].Match.Match(event(t, "periodic-hourly_post_failure.json")) {
		t.Error("post-failures does not keep a POST_FAILURE build")
	}
	if !routes[2].Match.Match(event(t, "periodic-daily_failure_mixed.json")) || !routes[2].Match.Match(event(t, "periodic-daily_success.json")) {
		t.Error("the status page route must see failures and successes of its pipeline")
	}
}

func TestInvalidRulesNameRouteAndKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "routes:\n  - name: a\n    nats:\n      subjet: x\n", []string{`route "a" (line 2)`, "subjet"}},
		{"typo in match", "routes:\n  - name: a\n    match:\n      pipline: x\n    nats: {}\n", []string{`route "a"`, "pipline"}},
		{"bad class", "routes:\n  - name: a\n    match:\n      result: failur\n    nats: {}\n", []string{`route "a" (line 2)`, "match.result", "failur"}},
		{"no sink", "routes:\n  - name: a\n    match: {pipeline: x}\n", []string{`route "a"`, "no sink"}},
		{"no name", "routes:\n  - nats: {}\n", []string{"route #1", "name: missing"}},
		{"bad name", "routes:\n  - name: 'a b'\n    nats: {}\n", []string{"name:", "a b"}},
		{"duplicate", "routes:\n  - name: a\n    nats: {}\n  - name: a\n    nats: {}\n", []string{`route "a" (line 4)`, "line 2"}},
		{"bad subject", "routes:\n  - name: a\n    nats: {subject: 'zuul.{nope}'}\n", []string{`route "a"`, "nats.subject", "nope"}},
		{"statuspage without component", "routes:\n  - name: sp\n    statuspage: {severity: limited}\n", []string{`route "sp"`, "statuspage."}},
		{"empty", "", []string{"empty"}},
		{"no routes", "routes: []\n", []string{"no routes"}},
		{"not yaml", "routes: [\n", []string{"yaml"}},
		{"top-level typo", "route:\n  - name: a\n", []string{"route"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("rules.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	_, err := Parse("r.yaml", []byte("routes:\n  - name: a\n    match: {result: failur}\n    nats: {subject: 'x..y'}\n  - name: b\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"failur", "nats.subject", `route "b"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/example.yaml", "default.yaml"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("routes:\n  - name: a\n    match: {result: [failure, POST_*]}\n    nats: {}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		routes, err := Parse("fuzz", b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, r := range routes {
			if r.Name == "" || r.Match == nil || (r.NATS == nil && r.StatusPage == nil) {
				t.Fatalf("accepted an incomplete route %+v", r)
			}
			r.Match.Match(&zuul.Event{Tenant: "t", Outcome: zuul.OutcomeFailure, Builds: []zuul.Build{{JobName: "j"}}})
		}
	})
}

func TestSplitJobs(t *testing.T) {
	routes, err := Parse("rules.yaml", []byte(`routes:
  - name: compliance
    split: jobs
    match:
      pipeline: periodic-daily
      job: "scs-check-*"
    statuspage:
      component: '{{ .Job | trimPrefix "scs-check-" | trimSuffix "-main" }}'
      components:
        - job: "scs-check-zuul*"
          component: Zuul
  - name: whole
    match:
      pipeline: periodic-daily
    nats: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !routes[0].SplitJobs || routes[1].SplitJobs {
		t.Errorf("split: %v %v", routes[0].SplitJobs, routes[1].SplitJobs)
	}
	if k := routes[0].StatusPage.Key; k[len(k)-1] != "job" || !routes[0].StatusPage.PerJob {
		t.Errorf("per-job key %v", k)
	}
	_, err = Parse("rules.yaml", []byte(`routes:
  - name: compliance
    split: builds
    nats: {}
`))
	if want := `route "compliance" (line 2): split: "builds": the one value is "jobs"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error lacks %q:\n%v", want, err)
	}
	_, err = Parse("rules.yaml", []byte(`routes:
  - name: other
    nats: {}
  - name: mapped
    statuspage:
      components:
        - job: "scs-check-*"
          compnent: Zuul
`))
	if want := `route "mapped" (line 4): line 8: field compnent not found in a components entry`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error lacks %q:\n%v", want, err)
	}
	_, err = Parse("rules.yaml", []byte(`routes:
  - name: mapped
    statuspage:
      components:
        - job: "scs-check-*"
          component: Zuul
`))
	if err == nil || !strings.Contains(err.Error(), `route "mapped" (line 2): statuspage.components: maps jobs to components: it needs `+"`split: jobs`") {
		t.Errorf("components without split: %v", err)
	}
}
