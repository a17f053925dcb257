package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestNightlyRuleWithPromtool renders the chart's PrometheusRule with reconciliation on and
// runs the rule unit tests in promtool/nightly_test.yaml against its rule groups with
// `promtool test rules`: green nightlies that only zuul-web sees do not fire, a pipeline
// whose newest buildset ended longer ago than maxAgeSeconds does, and so does one that
// never ran. promtool comes with Debian's prometheus package; without it the test is
// skipped, except in CI (CI=true), where it fails.
func TestNightlyRuleWithPromtool(t *testing.T) {
	helm := findHelm(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (apt-get install prometheus); CI needs it")
		}
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	spec := renderRule(t, helm, "--set", "zuul.url=https://zuul.example.org", "--set", "zuul.tenants={scs}")
	dir := t.TempDir()
	rules, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("promtool", "nightly_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// rule_files are relative to the test file: both go into one directory.
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nightly_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, "nightly_test.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s\nrules:\n%s", err, out, rules)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules said no SUCCESS:\n%s", out)
	}
	t.Logf("%s", out)
}

// TestNightlyRuleOffWithoutReconciliation: without zuul.url the rule is off by default (a
// failure-only pipeline sends nothing over MQTT while it passes), can be forced on, and
// then says what it can see; with zuul.url it is on and can be turned off.
func TestNightlyRuleOffWithoutReconciliation(t *testing.T) {
	helm := findHelm(t)
	zuul := []string{"--set", "zuul.url=https://zuul.example.org", "--set", "zuul.tenants={scs}"}
	cases := []struct {
		name      string
		args      []string
		want      bool
		reconcile bool
	}{
		{"no zuul.url, auto", nil, false, false},
		{"no zuul.url, forced on", []string{"--set", "prometheusRule.nightlyNotReported.enabled=true"}, true, false},
		{"zuul.url, auto", zuul, true, true},
		{"zuul.url, off", append([]string{"--set", "prometheusRule.nightlyNotReported.enabled=false"}, zuul...), false, true},
	}
	for _, c := range cases {
		spec := renderRule(t, helm, c.args...)
		rule := findAlert(spec, "ZuulBridgeNightlyNotReported")
		if (rule != nil) != c.want {
			t.Errorf("%s: rule rendered %v, want %v", c.name, rule != nil, c.want)
			continue
		}
		if rule == nil {
			continue
		}
		expr, _ := rule["expr"].(string)
		if !strings.Contains(expr, "zuul_bridge_pipeline_last_buildset_end_timestamp_seconds") {
			t.Errorf("%s: expr does not watch the buildset end gauge: %s", c.name, expr)
		}
		desc, _ := rule["annotations"].(map[string]any)["description"].(string)
		if without := strings.Contains(desc, "without zuul-web reconciliation"); without == c.reconcile {
			t.Errorf("%s: description does not say what the rule can see: %s", c.name, desc)
		}
	}
}

func findHelm(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("renders the chart with helm")
	}
	if helm, err := exec.LookPath("helm"); err == nil {
		return helm
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	helm := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Skip("helm is not installed (go install helm.sh/helm/v3/cmd/helm@v3.22.0; .ci/run does)")
	}
	return helm
}

// renderRule renders the chart's PrometheusRule (release zuul-bridge in namespace zuul, so
// the alerts select job="zuul-bridge") and returns its spec, the Prometheus rule file.
func renderRule(t *testing.T, helm string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(helm, append([]string{"template", "zuul-bridge", filepath.Join("helm", "zuul-bridge"),
		"--namespace", "zuul", "--set", "prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	var doc struct {
		Kind string         `yaml:"kind"`
		Spec map[string]any `yaml:"spec"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("rendered PrometheusRule: %v\n%s", err, out)
	}
	if doc.Kind != "PrometheusRule" || doc.Spec["groups"] == nil {
		t.Fatalf("rendered no PrometheusRule with groups:\n%s", out)
	}
	return doc.Spec
}

func findAlert(spec map[string]any, name string) map[string]any {
	groups, _ := spec["groups"].([]any)
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			if r, _ := r.(map[string]any); r["alert"] == name {
				return r
			}
		}
	}
	return nil
}
