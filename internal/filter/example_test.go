package filter_test

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/SovereignCloudStack/zuul-bridge/internal/filter"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func Example() {
	var route struct {
		Match   *filter.Spec `yaml:"match"`
		Exclude *filter.Spec `yaml:"exclude"`
	}
	dec := yaml.NewDecoder(strings.NewReader(`
match:
  pipeline: ["periodic-*", compliance_check]
  result: [failure, POST_FAILURE]
exclude:
  branch: "stable/*"
`))
	dec.KnownFields(true)
	if err := dec.Decode(&route); err != nil {
		panic(err)
	}
	m, err := filter.Compile(route.Match, route.Exclude)
	if err != nil {
		panic(err)
	}
	ev := &zuul.Event{
		Action: "failure", Tenant: "scs", Pipeline: "periodic-daily", Branch: "main",
		Project: "SovereignCloudStack/k8s-cluster-api-provider",
		Result:  "FAILURE", Outcome: zuul.OutcomeFailure,
	}
	fmt.Println(m.Match(ev))
	fmt.Println(m.Explain(ev))
	ev.Branch = "stable/2024.1"
	fmt.Println(m.Explain(ev))
	ev.Pipeline = "check"
	fmt.Println(m.Explain(ev))

	_, err = filter.Compile(&filter.Spec{Result: filter.Patterns{"failur"}}, &filter.Spec{Project: filter.Patterns{"[abc"}})
	fmt.Println(err)
	// Output:
	// true
	// true matched: pipeline "periodic-daily" by "periodic-*", outcome failure by "failure"; not excluded: exclude.branch "main" matches none of [stable/*]
	// false excluded by exclude.branch "stable/*" (branch "stable/2024.1")
	// false pipeline "check" matches none of [periodic-* compliance_check]
	// match.result: unknown result class "failur" (classes: success, failure, neutral, pending; exact Zuul values are upper-case, e.g. POST_FAILURE)
	// exclude.project: bad glob "[abc": unterminated [
}
