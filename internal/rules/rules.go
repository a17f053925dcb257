// Package rules loads the rules file: the routes, each with its match and exclude blocks
// (internal/filter) and its sinks' blocks (internal/natspub, internal/statuspage). Every
// problem of a file is reported at once, each naming the route, its line and the key.
package rules

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/SovereignCloudStack/zuul-bridge/internal/filter"
	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
)

// Default is the rules file used when none is configured.
//
//go:embed default.yaml
var Default []byte

// Route is one checked route of the rules file.
type Route struct {
	Name       string
	Line       int
	Match      *filter.Matcher
	NATS       *natspub.RouteConfig
	StatusPage *incident.RouteConfig
	// SplitJobs: the route handles each voting build of a final report as an event of its
	// own (`split: jobs`, zuul.Event.SplitJobs): matched, keyed and delivered per job.
	SplitJobs bool
	// Reconcile: read this route's pipelines back from zuul-web (when BRIDGE_ZUUL_URL is
	// set) to recover lost failures and see successes. Default: routes with a status page.
	Reconcile bool
}

// file is the YAML shape; unknown keys are errors (a typo must not silently widen a rule).
type file struct {
	Routes []route `yaml:"routes"`
}

type route struct {
	Name       string                `yaml:"name"`
	Match      *filter.Spec          `yaml:"match"`
	Exclude    *filter.Spec          `yaml:"exclude"`
	NATS       *natspub.RouteConfig  `yaml:"nats"`
	StatusPage *incident.RouteConfig `yaml:"statuspage"`
	Reconcile  *bool                 `yaml:"reconcile"`
	Split      string                `yaml:"split"`
}

// SplitJobsValue is the one value of `split:`.
const SplitJobsValue = "jobs"

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$`)

// LoadFile reads and checks a rules file; path "" means the built-in default.
func LoadFile(path string) ([]Route, error) {
	if path == "" {
		return Parse("built-in default rules", Default)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	return Parse(path, b)
}

// Parse checks the rules in b; name says where they came from in errors.
func Parse(name string, b []byte) ([]Route, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines := routeLines(&doc)
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty rules file: it needs a routes: list", name)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s:\n  %s", name, strings.Join(annotate(te.Errors, lines, f.Routes), "\n  "))
		}
		if lineRE.MatchString(err.Error()) { // a block's own check ("line 9: field ... not found")
			return nil, fmt.Errorf("%s:\n  %s", name, annotate([]string{err.Error()}, lines, f.Routes)[0])
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(f.Routes) == 0 {
		return nil, fmt.Errorf("%s: no routes: the file needs a non-empty routes: list", name)
	}
	var errs []string
	seen := map[string]int{}
	out := make([]Route, 0, len(f.Routes))
	for i, r := range f.Routes {
		line := 0
		if i < len(lines) {
			line = lines[i].line
		}
		where := fmt.Sprintf("route %q (line %d)", r.Name, line)
		if r.Name == "" {
			where = fmt.Sprintf("route #%d (line %d)", i+1, line)
		}
		fail := func(format string, a ...any) { errs = append(errs, where+": "+fmt.Sprintf(format, a...)) }
		switch {
		case r.Name == "":
			fail("name: missing")
		case !nameRE.MatchString(r.Name):
			fail("name: %q: use letters, digits, '-' and '_' (it labels metrics and headers)", r.Name)
		case seen[r.Name] > 0:
			fail("name: %q is also the name of the route at line %d", r.Name, seen[r.Name])
		default:
			seen[r.Name] = line
		}
		m, err := filter.Compile(r.Match, r.Exclude)
		if err != nil {
			for _, e := range splitJoined(err) {
				fail("%s", e)
			}
		}
		split := false
		switch r.Split {
		case "":
		case SplitJobsValue:
			split = true
		default:
			fail("split: %q: the one value is %q (each voting build of a report as an event of its own); leave it out for whole reports", r.Split, SplitJobsValue)
		}
		if r.NATS == nil && r.StatusPage == nil {
			fail("no sink: give it a nats: or a statuspage: block (or both)")
		}
		if r.NATS != nil {
			if err := r.NATS.Validate(); err != nil {
				for _, e := range splitJoined(err) {
					fail("nats.%s", e)
				}
			}
		}
		if r.StatusPage != nil {
			r.StatusPage.PerJob = split
			if err := r.StatusPage.Validate(); err != nil {
				for _, e := range splitJoined(err) {
					fail("statuspage.%s", e)
				}
			}
		}
		reconcile := r.StatusPage != nil
		if r.Reconcile != nil {
			reconcile = *r.Reconcile
		}
		out = append(out, Route{Name: r.Name, Line: line, Match: m, NATS: r.NATS, StatusPage: r.StatusPage, Reconcile: reconcile, SplitJobs: split})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s:\n  %s", name, strings.Join(errs, "\n  "))
	}
	return out, nil
}

type routeLine struct {
	line, end int
	name      string // as written, for errors that stop the decoding
}

// routeLines finds where each route starts (and the next begins), to name the route of a
// line that the YAML decoder complains about.
func routeLines(doc *yaml.Node) []routeLine {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "routes" || m.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		var out []routeLine
		items := m.Content[i+1].Content
		for j, it := range items {
			end := 1 << 30
			if j+1 < len(items) {
				end = items[j+1].Line
			}
			rl := routeLine{line: it.Line, end: end}
			for k := 0; it.Kind == yaml.MappingNode && k+1 < len(it.Content); k += 2 {
				if it.Content[k].Value == "name" {
					rl.name = it.Content[k+1].Value
				}
			}
			out = append(out, rl)
		}
		return out
	}
	return nil
}

var lineRE = regexp.MustCompile(`^line (\d+): `)

// annotate prefixes decoder errors ("line 7: field subjet not found in type
// natspub.RouteConfig") with the route they are in.
func annotate(msgs []string, lines []routeLine, routes []route) []string {
	out := make([]string, len(msgs))
	for i, msg := range msgs {
		out[i] = msg
		m := lineRE.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		var n int
		fmt.Sscan(m[1], &n)
		for j, l := range lines {
			if n >= l.line && n < l.end {
				name := l.name
				if j < len(routes) && routes[j].Name != "" {
					name = routes[j].Name
				}
				out[i] = fmt.Sprintf("route %q (line %d): %s", name, l.line, msg)
				break
			}
		}
	}
	return out
}

// splitJoined unfolds an errors.Join into its messages.
func splitJoined(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return strings.Split(err.Error(), "\n")
}
