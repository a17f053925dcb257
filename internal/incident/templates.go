package incident

import (
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TemplateData is what the title, description, update and resolve templates see.
type TemplateData struct {
	Event        *zuul.Event
	Route        string
	Key          map[string]string // the key fields and their values
	Result       string            // buildset result, or the outcome class when Zuul sent none
	FailedBuilds []zuul.Build
	Run          int       // failing reports counted for this incident, 1 for the opening one
	Since        time.Time // when the incident began (zero while opening)
	Reason       string    // resolve only: "success" or "quiet period"
	QuietPeriod  time.Duration
}

// Default templates. They name the pipeline and project, list the failed jobs with their
// log links and point at the buildset, so a reader of the status page can follow up.
const (
	DefaultTitle = `Zuul {{.Event.Pipeline}} failing: {{.Event.Project}}{{with .Event.Branch}} ({{.}}){{end}}`

	DefaultDescription = `The Zuul pipeline {{.Event.Pipeline}} (tenant {{.Event.Tenant}}) reported {{.Result}} for {{.Event.Project}}{{with .Event.Branch}} on {{.}}{{end}}.
{{- with .FailedBuilds}}
Failed jobs:
{{- range .}}
- {{.JobName}}: {{.Result}}{{with .LogURL}} {{.}}{{end}}
{{- end}}
{{- end}}
{{- with .Event.BuildsetURL}}
Buildset: {{.}}{{end}}`

	DefaultUpdate = `Still failing (run {{.Run}})
{{.Event.Pipeline}} reported {{.Result}} again for {{.Event.Project}}.
{{- with .FailedBuilds}}
Failed jobs:
{{- range .}}
- {{.JobName}}: {{.Result}}{{with .LogURL}} {{.}}{{end}}
{{- end}}
{{- end}}
{{- with .Event.BuildsetURL}}
Buildset: {{.}}{{end}}`

	DefaultResolve = `Resolved
{{if eq .Reason "success"}}{{.Event.Pipeline}} succeeded again for {{.Event.Project}}.{{with .Event.BuildsetURL}}
Buildset: {{.}}{{end}}{{else}}No further failure was reported within the quiet period ({{.QuietPeriod}}).{{end}}`
)

type templates struct {
	title, description, update, resolve *template.Template
}

// sampleEvent is used to execute templates once at validation time.
func sampleEvent() zuul.Event {
	return zuul.Event{
		ID: "sample", Action: "failure", Tenant: "scs", Pipeline: "periodic-daily", Project: "org/project",
		Branch: "main", Result: "FAILURE", Outcome: zuul.OutcomeFailure, BuildsetURL: "https://zuul.example.org/t/scs/buildset/1",
		Builds: []zuul.Build{{JobName: "job", Result: "FAILURE", LogURL: "https://logs.example.org/1/"}},
	}
}

func compileTemplates(c *RouteConfig) (*templates, []error) {
	var errs []error
	parse := func(key, text, def string) *template.Template {
		if strings.TrimSpace(text) == "" {
			text = def
		}
		t, err := template.New(key).Option("missingkey=error").Parse(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", key, err))
			return nil
		}
		for _, reason := range []string{"success", "quiet period"} {
			if _, err := render(t, sampleData(reason)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", key, err))
				return nil
			}
		}
		return t
	}
	t := &templates{
		title:       parse("title", c.Title, DefaultTitle),
		description: parse("description", c.Description, DefaultDescription),
		update:      parse("update", c.Update, DefaultUpdate),
		resolve:     parse("resolve", c.Resolve, DefaultResolve),
	}
	return t, errs
}

func sampleData(reason string) *TemplateData {
	ev := sampleEvent()
	return &TemplateData{Event: &ev, Route: "route", Key: map[string]string{"tenant": "scs"}, Result: "FAILURE",
		FailedBuilds: ev.FailedBuilds(), Run: 2, Since: time.Unix(0, 0), Reason: reason, QuietPeriod: time.Hour}
}

func render(t *template.Template, d *TemplateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// oneLine makes a display name of a rendered title: one line, at most 200 bytes, cut at
// a character boundary.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func (t *templates) all() []*template.Template {
	return []*template.Template{t.title, t.description, t.update, t.resolve}
}

// splitUpdate splits a rendered update template into display name (first line) and text.
func splitUpdate(s string) (name, text string) {
	s = strings.TrimLeft(s, "\n")
	name, text, _ = strings.Cut(s, "\n")
	return oneLine(name), strings.TrimSpace(text)
}
