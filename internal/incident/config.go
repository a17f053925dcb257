package incident

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Defaults of RouteConfig. "Unknown" and "limited" exist in both provisioning files of
// status-page-api (the repo default and the SCS public one); a failing check says that
// something is wrong, not what, hence "Unknown".
const (
	DefaultImpactType = "Unknown"
	DefaultSeverity   = "limited"
	DefaultOpenPhase  = "Investigation ongoing"
)

// DefaultKey returns the default incident key: one incident per tenant, pipeline, project
// and branch.
func DefaultKey() []string { return []string{"tenant", "pipeline", "project", "branch"} }

// RouteConfig is the `statuspage:` block of a route in the rules file. Decoded from YAML
// it starts from DefaultRouteConfig, so an absent key takes its default while an explicit
// bad value (open_after: 0) is reported by Validate.
type RouteConfig struct {
	// Component is the display name of the affected component ("Zuul").
	Component string `yaml:"component"`
	// ComponentLabels selects the component by labels instead (all must match, exactly
	// one component may match). Exactly one of Component and ComponentLabels is set.
	ComponentLabels map[string]string `yaml:"component_labels"`
	// Components derives the component from the job of a per-job report (`split: jobs`):
	// the first entry whose job glob matches names it; `component` (which may then be a
	// template over the job, component.go) or `component_labels` is the fallback.
	Components []ComponentRule `yaml:"components"`
	// ImpactType is the display name of the impact type, default "Unknown".
	ImpactType string `yaml:"impact_type"`
	// Severity is a number 1..100 or the name of a severity ("limited" = 66 on SCS);
	// default "limited". 0 is maintenance and cannot be opened as an ongoing incident.
	Severity string `yaml:"severity"`
	// OpenPhase is the phase of a new incident, default "Investigation ongoing".
	OpenPhase string `yaml:"open_phase"`
	// ResolvePhase is the phase of an ended incident, default the last phase ("Done").
	ResolvePhase string `yaml:"resolve_phase"`
	// Key lists the event fields (zuul.Event.Field) that identify one incident; default
	// tenant, pipeline, project, branch. The route name is always part of the key.
	Key []string `yaml:"key"`
	// Title, Description, Update and Resolve are text/templates over TemplateData (with
	// the functions of texts.go). For Update and Resolve the first line is the update's
	// display name, the rest its text. Every rendered text is made one paragraph and cut to
	// its limit (MaxTitle, ...). Empty = the defaults in templates.go.
	Title       string `yaml:"title"`
	Description string `yaml:"description"`
	Update      string `yaml:"update"`
	Resolve     string `yaml:"resolve"`
	// OpenAfter is the number of consecutive failing reports that open an incident (>= 1).
	OpenAfter int `yaml:"open_after"`
	// ResolveAfter is the number of consecutive successful reports that resolve it (>= 1).
	ResolveAfter int `yaml:"resolve_after"`
	// QuietPeriod resolves an open incident when no failure came for this long ("36h");
	// 0 = never. SCS periodic pipelines report failures only, so this is often the only
	// way an incident ends.
	QuietPeriod time.Duration `yaml:"quiet_period"`

	// PerJob is set for a route with `split: jobs` (by the rules, before Validate): its
	// reports are the events of single jobs. The key then always holds "job", and the
	// default texts speak of one job's check.
	PerJob bool `yaml:"-"`

	tmpl          *templates         // set by Validate
	componentTmpl *template.Template // set by Validate when Component is a template
}

// DefaultRouteConfig returns a RouteConfig with every default filled in; set Component
// (or ComponentLabels) and it is valid.
func DefaultRouteConfig() RouteConfig {
	return RouteConfig{
		ImpactType:   DefaultImpactType,
		Severity:     DefaultSeverity,
		OpenPhase:    DefaultOpenPhase,
		Key:          DefaultKey(),
		OpenAfter:    1,
		ResolveAfter: 1,
	}
}

// UnmarshalYAML starts from the defaults and rejects unknown keys itself: yaml.v3 does
// not pass the caller's KnownFields(true) on to a custom unmarshaler's Node.Decode.
func (c *RouteConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: statuspage must be a mapping", n.Line)
	}
	known := yamlKeys()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			names := make([]string, 0, len(known))
			for name := range known {
				names = append(names, name)
			}
			sort.Strings(names)
			return fmt.Errorf("line %d: field %s not found in statuspage (known: %s)", k.Line, k.Value, strings.Join(names, ", "))
		}
	}
	type plain RouteConfig
	p := plain(DefaultRouteConfig())
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = RouteConfig(p)
	return nil
}

func yamlKeys() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(RouteConfig{})
	for i := range t.NumField() {
		if tag, ok := t.Field(i).Tag.Lookup("yaml"); ok && tag != "-" {
			out[strings.Split(tag, ",")[0]] = true
		}
	}
	return out
}

// Validate reports every problem at once, each naming its key, and compiles the
// templates (executing them once against a sample report, so that a misspelt field is a
// configuration error and not a failed delivery).
func (c *RouteConfig) Validate() error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	c.validateComponents(add)
	if c.PerJob && !slices.Contains(c.Key, "job") {
		c.Key = append(slices.Clip(c.Key), "job") // one incident per job
	}
	if c.ImpactType == "" {
		add("impact_type", "must not be empty")
	}
	if _, err := parseSeverity(c.Severity); err != nil {
		add("severity", "%v", err)
	}
	if c.OpenPhase == "" {
		add("open_phase", "must not be empty")
	}
	if len(c.Key) == 0 {
		add("key", "must name at least one field (%s)", strings.Join(zuul.FieldNames, ", "))
	}
	seen := map[string]bool{}
	for _, f := range c.Key {
		var ev zuul.Event
		if _, ok := ev.Field(f); !ok {
			add("key", "unknown field %q (known: %s)", f, strings.Join(zuul.FieldNames, ", "))
		} else if seen[f] {
			add("key", "field %q listed twice", f)
		}
		seen[f] = true
	}
	if c.OpenAfter < 1 {
		add("open_after", "must be >= 1, got %d", c.OpenAfter)
	}
	if c.ResolveAfter < 1 {
		add("resolve_after", "must be >= 1, got %d", c.ResolveAfter)
	}
	if c.QuietPeriod < 0 {
		add("quiet_period", "must be >= 0, got %s", c.QuietPeriod)
	}
	t, terrs := compileTemplates(c)
	errs = append(errs, terrs...)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.tmpl = t
	return nil
}

// severitySpec is a parsed Severity: a number, or a name to look up in the catalogue.
type severitySpec struct {
	value int
	name  string
}

func parseSeverity(s string) (severitySpec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return severitySpec{}, errors.New("must be a number 1..100 or a severity name")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 100 {
			return severitySpec{}, fmt.Errorf("must be within 1..100 (0 is maintenance), got %d", n)
		}
		return severitySpec{value: n}, nil
	}
	return severitySpec{name: s}, nil
}
