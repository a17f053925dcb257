package incident_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
)

// route mirrors how the rules loader embeds the block.
type route struct {
	Name       string                `yaml:"name"`
	Statuspage *incident.RouteConfig `yaml:"statuspage"`
}

func decode(t *testing.T, text string) (*incident.RouteConfig, error) {
	t.Helper()
	var r route
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	return r.Statuspage, nil
}

func TestRouteConfigYAML(t *testing.T) {
	c, err := decode(t, `
name: r
statuspage:
  component: Zuul
  severity: 100
  quiet_period: 36h
  key: [tenant, pipeline]
  title: "{{.Event.Pipeline}} broken"
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	eq(t, "component", c.Component, "Zuul")
	eq(t, "severity", c.Severity, "100")
	eq(t, "quiet_period", c.QuietPeriod, 36*time.Hour)
	eq(t, "key", strings.Join(c.Key, ","), "tenant,pipeline")
	eq(t, "default impact type", c.ImpactType, "Unknown")
	eq(t, "default open phase", c.OpenPhase, "Investigation ongoing")
	eq(t, "default open_after", c.OpenAfter, 1)
	eq(t, "default resolve_after", c.ResolveAfter, 1)

	_, err = decode(t, "statuspage:\n  component: Zuul\n  open_afer: 2\n")
	if err == nil || !strings.Contains(err.Error(), "open_afer") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("unknown key: %v", err)
	}
	_, err = decode(t, "statuspage:\n  component: Zuul\n  quiet_period: 36\n")
	if err == nil {
		t.Error("quiet_period: 36 (no unit) accepted")
	}
}

// Validate reports every problem at once, each with its key.
func TestRouteConfigValidate(t *testing.T) {
	c, err := decode(t, `
statuspage:
  component: Zuul
  component_labels: {a: b}
  severity: 0
  key: [tenant, colour, tenant]
  open_after: 0
  resolve_after: -1
  quiet_period: -1h
  title: "{{.Event.Pipelin}}"
  update: "{{if}}"
`)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate passed")
	}
	for _, want := range []string{
		"component: set component or component_labels, not both",
		"severity: must be within 1..100 (0 is maintenance), got 0",
		`key: unknown field "colour"`,
		`key: field "tenant" listed twice`,
		"open_after: must be >= 1, got 0",
		"resolve_after: must be >= 1, got -1",
		"quiet_period: must be >= 0, got -1h0m0s",
		"title: ", "Pipelin",
		"update: ",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	empty := incident.RouteConfig{}
	if err := empty.Validate(); err == nil || !strings.Contains(err.Error(), "component: set component, component_labels or components") {
		t.Errorf("empty config: %v", err)
	}
}

// Plan lists the calls a report would cause and makes none.
func TestPlan(t *testing.T) {
	e := newEnv(t, statuspagefakeOptions(), nil)
	var plan []string
	eqCalls(t, "Plan calls nothing", e.calls(func() { plan = e.sink.Plan(fail(1, hours(0))) }))
	if len(plan) != 1 || !strings.HasPrefix(plan[0], `POST /incidents displayName="Nightly checks of SovereignCloudStack/k8s-cluster-api-provider (periodic-daily, main)"`) {
		t.Errorf("plan of an opening failure: %q", plan)
	}
	eq(t, "no incident after Plan", len(e.incidents()), 0)
	e.send(fail(1, hours(0)))
	eq(t, "plan of a duplicate", len(e.sink.Plan(fail(1, hours(0)))), 0)
	plan = e.sink.Plan(fail(2, hours(1)))
	if len(plan) != 1 || !strings.Contains(plan[0], `displayName="Still failing"`) {
		t.Errorf("plan of an update: %q", plan)
	}
	plan = e.sink.Plan(ok(3, hours(2)))
	if len(plan) != 3 || !strings.HasPrefix(plan[2], "PATCH /incidents/") || !strings.Contains(plan[2], "phase=1/4") {
		t.Errorf("plan of a resolve: %q", plan)
	}
	eq(t, "plan of a pending report", len(e.sink.Plan(ev(4, "pending", hours(3)))), 0)
}
