package filter_test

import (
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/SovereignCloudStack/zuul-bridge/internal/filter"
)

// route is the shape a rules file loader decodes a route into.
type route struct {
	Name    string       `yaml:"name"`
	Match   *filter.Spec `yaml:"match"`
	Exclude *filter.Spec `yaml:"exclude"`
}

func decodeRoute(t *testing.T, src string) (route, error) {
	t.Helper()
	var r route
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	err := dec.Decode(&r)
	return r, err
}

func TestDecodeSpec(t *testing.T) {
	r, err := decodeRoute(t, `
name: periodic-failures
match:
  pipeline: ["periodic-*", compliance_check]
  project: SovereignCloudStack/k8s-cluster-api-provider
  result:
    - failure
    - POST_FAILURE
  branch: 2024        # a number is read as its text
  job: &jobs [a, b]
exclude:
  job: *jobs          # aliases work
  tenant: scs
`)
	if err != nil {
		t.Fatal(err)
	}
	want := filter.Spec{
		Pipeline: p("periodic-*", "compliance_check"),
		Project:  p("SovereignCloudStack/k8s-cluster-api-provider"),
		Result:   p("failure", "POST_FAILURE"),
		Branch:   p("2024"),
		Job:      p("a", "b"),
	}
	if !specEqual(*r.Match, want) {
		t.Errorf("match = %+v, want %+v", *r.Match, want)
	}
	if wantEx := (filter.Spec{Job: p("a", "b"), Tenant: p("scs")}); !specEqual(*r.Exclude, wantEx) {
		t.Errorf("exclude = %+v, want %+v", *r.Exclude, wantEx)
	}
	if _, err := filter.Compile(r.Match, r.Exclude); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeSpecNullBlock(t *testing.T) {
	// "match:" with nothing under it leaves Match nil: Compile makes that "every report".
	r, err := decodeRoute(t, "name: all\nmatch:\n")
	if err != nil || r.Match != nil {
		t.Fatalf("match = %+v, err = %v", r.Match, err)
	}
}

func TestDecodeSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"map instead of list", "match:\n  pipeline: {a: b}\n", []string{"line 2: pipeline: a map is not a pattern"}},
		{"map inside list", "match:\n  pipeline:\n    - a: b\n", []string{"line 3: pipeline: a map is not a pattern"}},
		{"nested list", "match:\n  project: [a, [b, c]]\n", []string{"line 2: project: a list inside a list is not allowed"}},
		{"null value", "match:\n  branch:\n  tenant: scs\n", []string{"line 2: branch: null is not a pattern"}},
		{"explicit null", "match:\n  branch: ~\n", []string{"line 2: branch: null is not a pattern"}},
		{"null in list", "match:\n  branch: [main, null]\n", []string{"line 2: branch: null is not a pattern"}},
		{"empty string", "match:\n  job: \"\"\n", []string{"line 2: job: empty pattern"}},
		{"empty string in list", "match:\n  job: [a, '']\n", []string{"line 2: job: empty pattern"}},
		{"empty list", "exclude:\n  job: []\n", []string{"line 2: job: empty list"}},
		{"unknown key", "match:\n  pipelines: [check]\n", []string{`line 2: unknown field "pipelines" (fields: tenant, pipeline, project, branch, action, result, job)`}},
		{"duplicate key", "match:\n  job: a\n  job: b\n", []string{"line 3: job: already set at line 2"}},
		{"block is a list", "match:\n  - pipeline: check\n", []string{"line 2: want a mapping of field: pattern(s)"}},
		{"block is a scalar", "exclude: check\n", []string{`line 1: want a mapping of field: pattern(s) (fields: tenant, pipeline, project, branch, action, result, job), got "check"`}},
		{"every problem at once", "match:\n  job: []\n  branch: {}\nexclude:\n  projekt: x\n  tenant: ''\n", []string{
			"line 2: job: empty list", "line 3: branch: a map is not a pattern",
			`line 5: unknown field "projekt"`, "line 6: tenant: empty pattern",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeRoute(t, tc.src)
			if err == nil {
				t.Fatal("decoded without error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

// TestDecodePatterns checks Patterns on its own, outside a Spec.
func TestDecodePatterns(t *testing.T) {
	var v struct {
		A filter.Patterns `yaml:"a"`
		B filter.Patterns `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("a: x\nb: [y, 'z*']\n"), &v); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.A, p("x")) || !slices.Equal(v.B, p("y", "z*")) {
		t.Fatalf("got %q %q", v.A, v.B)
	}
	err := yaml.Unmarshal([]byte("a: {k: v}\nb: [[y]]\n"), &v)
	if err == nil || !strings.Contains(err.Error(), "line 1: a map is not a pattern") ||
		!strings.Contains(err.Error(), "line 2: a list inside a list") {
		t.Fatalf("err = %v", err)
	}
}

func specEqual(a, b filter.Spec) bool {
	return slices.Equal(a.Tenant, b.Tenant) && slices.Equal(a.Pipeline, b.Pipeline) &&
		slices.Equal(a.Project, b.Project) && slices.Equal(a.Branch, b.Branch) &&
		slices.Equal(a.Action, b.Action) && slices.Equal(a.Result, b.Result) && slices.Equal(a.Job, b.Job)
}
