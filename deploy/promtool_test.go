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
// `promtool test rules`, with the default thresholds: green nightlies that only zuul-web
// sees do not fire; a daily pipeline whose newest buildset ended over 26h ago does, and so
// does one that never ran; an hourly one that stopped fires 2h after its last run and
// resolves when it runs again; a weekly one that ran 3 days ago is silent (the daily rule
// does not watch it) and fires after 8 days. promtool comes with Debian's prometheus
// package; without it the test is skipped, except in CI (CI=true), where it fails.
func TestNightlyRuleWithPromtool(t *testing.T) {
	helm := findHelm(t)
	promtool := findPromtool(t)
	spec := renderRule(t, helm, "--set", "zuul.url=https://zuul.example.org", "--set", "zuul.tenants={scs}")
	promtoolTest(t, promtool, spec, "nightly_test.yaml")
}

// TestRulesReloadAlertWithPromtool: a pod whose last rules reload was refused fires
// ZuulBridgeRulesReloadFailed after 5 minutes and clears at the next good reload; a pod
// whose reloads succeed never fires (promtool/reload_test.yaml).
func TestRulesReloadAlertWithPromtool(t *testing.T) {
	helm := findHelm(t)
	promtool := findPromtool(t)
	promtoolTest(t, promtool, renderRule(t, helm), "reload_test.yaml")
}

// findPromtool finds promtool (Debian's prometheus package); without it the test is
// skipped, except in CI (CI=true), where it fails.
func findPromtool(t *testing.T) string {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (apt-get install prometheus); CI needs it")
		}
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	return promtool
}

// promtoolTest runs `promtool test rules` of promtool/<name> against the rule groups of
// spec (written next to it as rules.yaml: rule_files are relative to the test file).
func promtoolTest(t *testing.T, promtool string, spec any, name string) {
	t.Helper()
	dir := t.TempDir()
	rules, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("promtool", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "test", "rules", filepath.Join(dir, name)).CombinedOutput()
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

// TestNightlyThresholdsOneRuleEach: every entry of nightlyNotReported.thresholds is one
// rule with its threshold label and age, and leaves out the pipelines of the entries
// before it (first match wins), so a pipeline is watched by one rule only.
func TestNightlyThresholdsOneRuleEach(t *testing.T) {
	helm := findHelm(t)
	spec := renderRule(t, helm, "--set", "zuul.url=https://zuul.example.org", "--set", "zuul.tenants={scs}")
	want := []struct{ threshold, age, sel string }{
		{"hourly", "7200", `pipeline=~"periodic-hourly"}`},
		{"weekly", "691200", `pipeline=~"periodic-weekly",pipeline!~"periodic-hourly"}`},
		{"daily", "93600", `pipeline=~"periodic-.*|compliance_check",pipeline!~"periodic-hourly",pipeline!~"periodic-weekly"}`},
	}
	rules := findAlerts(spec, "ZuulBridgeNightlyNotReported")
	if len(rules) != len(want) {
		t.Fatalf("%d rules, want one per default threshold (%d)", len(rules), len(want))
	}
	for i, w := range want {
		labels, _ := rules[i]["labels"].(map[string]any)
		expr, _ := rules[i]["expr"].(string)
		if labels["threshold"] != w.threshold || !strings.Contains(expr, w.sel) || !strings.HasSuffix(expr, "["+w.age+"s])) > "+w.age) {
			t.Errorf("rule %d: labels %v, expr %s; want threshold %s, selector %s, age %s", i, labels, expr, w.threshold, w.sel, w.age)
		}
	}
	// A list of one's own, with a severity of its own for one entry.
	spec = renderRule(t, helm, "--set", "prometheusRule.nightlyNotReported.enabled=true",
		"--set", "prometheusRule.nightlyNotReported.thresholds[0].name=capi",
		"--set", "prometheusRule.nightlyNotReported.thresholds[0].pipelines=periodic-capi",
		"--set", "prometheusRule.nightlyNotReported.thresholds[0].maxAgeSeconds=3600",
		"--set", "prometheusRule.nightlyNotReported.thresholds[0].severity=critical")
	rules = findAlerts(spec, "ZuulBridgeNightlyNotReported")
	if len(rules) != 1 {
		t.Fatalf("%d rules for a list of one", len(rules))
	}
	if labels, _ := rules[0]["labels"].(map[string]any); labels["severity"] != "critical" || labels["threshold"] != "capi" {
		t.Errorf("labels %v", labels)
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
	if rules := findAlerts(spec, name); len(rules) > 0 {
		return rules[0]
	}
	return nil
}

// findAlerts returns every rule of the alert name, in order.
func findAlerts(spec map[string]any, name string) []map[string]any {
	var found []map[string]any
	groups, _ := spec["groups"].([]any)
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			if r, _ := r.(map[string]any); r["alert"] == name {
				found = append(found, r)
			}
		}
	}
	return found
}
