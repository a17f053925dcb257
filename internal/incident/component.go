package incident

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/SovereignCloudStack/zuul-bridge/internal/filter"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// A route's component can be derived from each report (per-job routes, `split: jobs`):
//
//   - `components:` maps job globs to a component, first match wins:
//     [{job: "scs-check-gx-scs*", component: gx-scs}, {job: "scs-check-*", component_labels: {...}}];
//   - `component:` may be a template over the report ("{{ .Job | trimPrefix "scs-check-" |
//     trimSuffix "-main" }}"), the fallback for a job no entry of `components` names.
//
// A derived name is resolved against the catalogue for each report (the catalogue is
// refreshed every RefreshInterval). A name the status page does not have holds back only
// the reports that derive it (Sink.Ready, Send): their outbox items wait, retried, while
// every other job goes on; it is reported like any unknown name (Sink.UnknownComponents).

// ComponentRule is one entry of `components:`.
type ComponentRule struct {
	// Job is a glob over the job name (the syntax of match:).
	Job string `yaml:"job"`
	// Component is the component's display name (may be a template like `component:`).
	Component string `yaml:"component"`
	// ComponentLabels selects the component by labels instead.
	ComponentLabels map[string]string `yaml:"component_labels"`

	job  *filter.Pattern
	name *template.Template // set when Component is a template
}

// ComponentData is what a component template sees.
type ComponentData struct {
	Job   string      // the job of a per-job report, "" for a buildset
	Event *zuul.Event // the report
}

// componentFuncs are the functions of component templates, besides Go's built-ins.
var componentFuncs = template.FuncMap{
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"lower":      strings.ToLower,
}

// isTemplate: a component name with "{{" is a template.
func isTemplate(s string) bool { return strings.Contains(s, "{{") }

// sampleJobs are the job names a component template is tried on when the rules are
// loaded: an SCS compliance check job and a plain one.
var sampleJobs = []string{"scs-check-gx-scs-main", "job"}

func compileComponentName(key, text string) (*template.Template, error) {
	t, err := template.New(key).Option("missingkey=error").Funcs(componentFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", key, err)
	}
	for _, job := range sampleJobs {
		ev := sampleEvent()
		ev.Job = job
		if _, err := execName(t, &ComponentData{Job: job, Event: &ev}); err != nil {
			return nil, fmt.Errorf("%s: %v", key, err)
		}
	}
	return t, nil
}

func execName(t *template.Template, d *ComponentData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// componentSpec is a component as named for one report: a display name or labels.
type componentSpec struct {
	name   string
	labels map[string]string
}

func (c componentSpec) String() string {
	if c.name != "" {
		return c.name
	}
	return "component" + labelString(c.labels)
}

// derived reports whether the route's component depends on the report.
func (c *RouteConfig) derived() bool { return len(c.Components) > 0 || c.componentTmpl != nil }

// validateComponents checks `component`, `component_labels` and `components`.
func (c *RouteConfig) validateComponents(add func(key, format string, a ...any)) {
	switch {
	case c.Component != "" && len(c.ComponentLabels) > 0:
		add("component", "set component or component_labels, not both")
	case c.Component == "" && len(c.ComponentLabels) == 0 && len(c.Components) == 0:
		add("component", "set component, component_labels or components")
	}
	c.componentTmpl = nil
	if isTemplate(c.Component) {
		t, err := compileComponentName("component", c.Component)
		if err != nil {
			add("component", "%v", strings.TrimPrefix(err.Error(), "component: "))
		}
		c.componentTmpl = t
	}
	if len(c.Components) > 0 && !c.PerJob {
		add("components", "maps jobs to components: it needs `split: jobs` on the route")
	}
	for i := range c.Components {
		r := &c.Components[i]
		key := fmt.Sprintf("components[%d]", i)
		if r.Job == "" {
			add(key+".job", "missing: a glob over the job name")
		} else if p, err := filter.CompilePattern(r.Job); err != nil {
			add(key+".job", "bad glob %q: %v", r.Job, err)
		} else {
			r.job = p
		}
		switch {
		case r.Component == "" && len(r.ComponentLabels) == 0:
			add(key, "set component or component_labels")
		case r.Component != "" && len(r.ComponentLabels) > 0:
			add(key, "set component or component_labels, not both")
		}
		r.name = nil
		if isTemplate(r.Component) {
			t, err := compileComponentName(key+".component", r.Component)
			if err != nil {
				add(key+".component", "%v", strings.TrimPrefix(err.Error(), key+".component: "))
			}
			r.name = t
		}
	}
}

// componentFor names the component of ev: the first `components` entry whose job glob
// matches the report's job, else `component` (a template is executed) or
// `component_labels`. An error says why there is none.
func (c *RouteConfig) componentFor(ev *zuul.Event) (componentSpec, error) {
	job := ev.Job
	d := &ComponentData{Job: job, Event: ev}
	for i := range c.Components {
		r := &c.Components[i]
		if r.job == nil || !r.job.Match(job) {
			continue
		}
		if len(r.ComponentLabels) > 0 {
			return componentSpec{labels: r.ComponentLabels}, nil
		}
		if r.name == nil {
			return componentSpec{name: r.Component}, nil
		}
		name, err := execName(r.name, d)
		if err != nil || name == "" {
			return componentSpec{}, fmt.Errorf("components entry %q: the template gives no name for job %q: %v", r.Job, job, err)
		}
		return componentSpec{name: name}, nil
	}
	switch {
	case c.componentTmpl != nil:
		name, err := execName(c.componentTmpl, d)
		if err != nil || name == "" {
			return componentSpec{}, fmt.Errorf("component: the template gives no name for job %q: %v", job, err)
		}
		return componentSpec{name: name}, nil
	case c.Component != "":
		return componentSpec{name: c.Component}, nil
	case len(c.ComponentLabels) > 0:
		return componentSpec{labels: c.ComponentLabels}, nil
	}
	return componentSpec{}, fmt.Errorf("components: no entry matches job %q, and there is no component to fall back on", job)
}

// unknownComponents are the derived components of a route the status page lacked when
// last looked up, with what is missing.
type unknownComponents struct {
	mu sync.Mutex
	m  map[string]unknownComponent // component (or "job <name>") -> what is missing
}

type unknownComponent struct {
	spec   componentSpec // zero when none could be derived
	reason string
}

func (u *unknownComponents) set(name string, reason unknownComponent) (isNew bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]unknownComponent{}
	}
	_, had := u.m[name]
	u.m[name] = reason
	return !had
}

func (u *unknownComponents) clear(name string) (was bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, was = u.m[name]
	delete(u.m, name)
	return was
}

func (u *unknownComponents) list() map[string]unknownComponent {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]unknownComponent, len(u.m))
	for k, v := range u.m {
		out[k] = v
	}
	return out
}

// ErrUnknownComponent: the component derived for a report is not on the status page (or
// none could be derived). The report waits (retryable); other reports go on.
var ErrUnknownComponent = errors.New("statuspage: the component of this report is not on the status page")

// eventComponent resolves the component an incident of ev is on: the route's, or the one
// derived from ev against the current catalogue. A derived component the page lacks is
// noted (UnknownComponents, logged once) and is a retryable error wrapping
// ErrUnknownComponent that names it.
func (s *Sink) eventComponent(ev *zuul.Event) (id, name string, err error) {
	if !s.cfg.derived() {
		t := s.target.Load()
		if t == nil {
			return "", "", &temporaryError{op: "component", err: fmt.Errorf("route %s: names not resolved", s.name)}
		}
		return t.componentID, s.componentLabel(ev), nil
	}
	spec, err := s.cfg.componentFor(ev)
	if err != nil {
		s.noteUnknown(ev, "job "+ev.Job, componentSpec{}, err.Error())
		return "", "", &temporaryError{op: "component", err: fmt.Errorf("%w: %v", ErrUnknownComponent, err)}
	}
	cat := s.m.cat.Load()
	if cat == nil {
		return "", spec.name, &temporaryError{op: "component", err: errors.New("catalogue not read yet")}
	}
	id, err = cat.componentID(spec)
	if err != nil {
		s.noteUnknown(ev, spec.String(), spec, err.Error())
		return "", spec.name, &temporaryError{op: "component", err: fmt.Errorf("%w: job %s: %v", ErrUnknownComponent, ev.Job, err)}
	}
	if s.unknown.clear(spec.String()) {
		s.log.Info().Str("status_page_component", spec.String()).Msg("the status page now has this component; its incidents go ahead")
	}
	name = spec.name
	if name == "" {
		name = cat.componentName(id)
	}
	return id, name, nil
}

// Ready says whether ev can be applied now: nil, unless it is a failure of a route whose
// component is derived from the report and the status page lacks that component (or
// none can be derived). Then the error names it, and the report's outbox item waits
// while every other report goes on. A success needs no component (it resolves).
func (s *Sink) Ready(ev *zuul.Event) error {
	if ev == nil || ev.Outcome != zuul.OutcomeFailure || !s.cfg.derived() {
		return nil
	}
	_, _, err := s.eventComponent(ev)
	return err
}

// componentLabel is the display name of ev's component for the texts, without looking
// anything up on the server: the derived or configured name, or for a label selector the
// name of the component it selects in the last catalogue ("" when unknown).
func (s *Sink) componentLabel(ev *zuul.Event) string {
	spec, err := s.cfg.componentFor(ev)
	if err != nil {
		return ""
	}
	if spec.name != "" {
		return spec.name
	}
	if cat := s.m.cat.Load(); cat != nil {
		if id, err := cat.componentID(spec); err == nil {
			return cat.componentName(id)
		}
	}
	return ""
}

func (s *Sink) noteUnknown(ev *zuul.Event, name string, spec componentSpec, reason string) {
	if s.unknown.set(name, unknownComponent{spec: spec, reason: reason}) {
		s.log.Error().Str("job", ev.Job).Str("status_page_component", name).Str("missing", reason).
			Msg("the status page lacks the component of this job: its incidents wait in the outbox until it exists or the rules are fixed; other jobs go on")
	}
}

// recheckUnknown forgets the unknown components a new catalogue has.
func (s *Sink) recheckUnknown(cat *catalog) {
	for name, u := range s.unknown.list() {
		if u.spec.name == "" && len(u.spec.labels) == 0 {
			continue // no component could be derived: only new rules help
		}
		if _, err := cat.componentID(u.spec); err == nil && s.unknown.clear(name) {
			s.log.Info().Str("status_page_component", name).Msg("the status page now has this component; its incidents go ahead")
		}
	}
}

// UnmarshalYAML rejects unknown keys of a `components:` entry (a typo must not silently
// drop a mapping).
func (r *ComponentRule) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a components entry is a mapping: {job: <glob>, component: <name>}", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i]; k.Value {
		case "job", "component", "component_labels":
		default:
			return fmt.Errorf("line %d: field %s not found in a components entry (known: component, component_labels, job)", k.Line, k.Value)
		}
	}
	type plain ComponentRule
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*r = ComponentRule(p)
	return nil
}
