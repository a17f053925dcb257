package incident

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TemplateData is what the title, description, update and resolve templates see.
type TemplateData struct {
	Event  *zuul.Event
	Route  string            // the route's name (never shown by the default texts)
	Key    map[string]string // the key fields and their values
	Result string            // buildset result, or the outcome class when Zuul sent none
	// Failed are the failed voting builds: the ones that make the buildset fail.
	Failed []zuul.Build
	// FailedBuilds are all failed builds, voting and non-voting.
	FailedBuilds []zuul.Build
	Run          int       // failing reports counted for this incident, 1 for the opening one
	At           time.Time // this report's time (the resolve's time for the closing update), UTC
	Since        time.Time // when the incident began (zero while opening)
	// Previous is the incident's previous failing report, for an update to say what
	// changed; nil when opening, and when unknown (after a restart, or when another
	// replica applied it).
	Previous    *zuul.Event
	Reason      string        // resolve only: "success" or "quiet period"
	QuietPeriod time.Duration // the route's quiet_period
	// Job is the job of a per-job report (`split: jobs`), "" for a buildset.
	Job string
	// Component is the display name of the component the incident is on: the route's,
	// or the one derived from the job (for a label selector: the name of the component it
	// selects, when the catalogue is known; else "").
	Component string
}

// Default templates, written for the users of the services on the public status page,
// whose frontend shows one plain paragraph per text: the title stays true in every phase
// (the badge shows the phase), the description says what fails since when with one link
// (the buildset page), an update says what changed. No route names, result codes or
// non-voting jobs; the job lists with log links are in the NATS messages.
const (
	DefaultTitle = `{{checks .Event.Pipeline}} of {{.Event.Project}} ({{.Event.Pipeline}}{{with .Event.Branch}}, {{.}}{{end}})`

	DefaultDescription = `{{checks .Event.Pipeline}} of {{.Event.Project}}{{with .Event.Branch}} on branch {{.}}{{end}} ` +
		`started failing on {{when .At}}: {{with .Failed}}{{failures .}}{{else}}{{outcome .Result}}{{end}}.` +
		`{{with .Event.BuildsetURL}} Details: {{.}}{{end}}`

	DefaultUpdate = `Still failing
Failed again at {{clock .At}}, {{inARow .Run .Event.Pipeline}}` +
		`{{if not .Previous}}: {{with .Failed}}{{failures .}}{{else}}{{outcome .Result}}{{end}}` +
		`{{else}}{{with newFailures .Failed .Previous}}; now also {{failures .}}{{end}}{{end}}.` +
		`{{with .Event.BuildsetURL}} Details: {{.}}{{end}}`

	// DefaultJobTitle, DefaultJobDescription, DefaultJobUpdate and DefaultJobResolve are
	// the defaults of per-job routes
	// (`split: jobs`), written for SCS's compliance checks (scs-check-<cloud>: "SCS
	// compliance check of gx-scs"; other jobs read "Check k8s-e2e of Zuul"). Like the
	// buildset title, the title names what is checked and stays true in every phase; the
	// description says what fails since when. The link is the job's build page (its log,
	// else the buildset page).
	DefaultJobTitle = `{{upperFirst (checkName .Job)}} of {{or .Component .Job}}`

	DefaultJobDescription = `The {{checkName .Job}} of {{or .Component "its component"}} (job {{.Job}}) started failing on {{when .At}}` +
		`{{with .Failed}}{{with index . 0}}{{if ne .Result "FAILURE"}}: it {{plain .Result}}{{end}}{{end}}{{end}}.` +
		`{{with jobLink .Event}} Details: {{.}}{{end}}`

	DefaultJobUpdate = `Still failing
Failed again at {{clock .At}}, {{inARow .Run .Event.Pipeline}}` +
		`{{with .Failed}}{{with index . 0}}{{if ne .Result "FAILURE"}}: it {{plain .Result}}{{end}}{{end}}{{end}}.` +
		`{{with jobLink .Event}} Details: {{.}}{{end}}`

	DefaultJobResolve = `Resolved
{{if eq .Reason "success"}}Passing again since {{clock .At}}.{{with jobLink .Event}} Details: {{.}}{{end}}` +
		`{{else}}No failure was reported for {{duration .QuietPeriod}}.{{end}}`

	DefaultResolve = `Resolved
{{if eq .Reason "success"}}Passing again since {{clock .At}}.{{with .Event.BuildsetURL}} Details: {{.}}{{end}}` +
		`{{else}}No failure was reported for {{duration .QuietPeriod}}.{{end}}`
)

type templates struct {
	title, description, update, resolve *template.Template
}

// sampleEvent is used to execute templates once at validation time.
func sampleEvent() zuul.Event {
	return zuul.Event{
		ID: "sample", Action: "failure", Tenant: "scs", Pipeline: "periodic-daily", Project: "org/project",
		Branch: "main", Result: "FAILURE", Outcome: zuul.OutcomeFailure, BuildsetURL: "https://zuul.example.org/t/scs/buildset/1",
		Builds: []zuul.Build{{JobName: "job", Voting: true, Result: "FAILURE", LogURL: "https://logs.example.org/1/"}},
	}
}

func compileTemplates(c *RouteConfig) (*templates, []error) {
	var errs []error
	defTitle, defDesc, defUpdate, defResolve := DefaultTitle, DefaultDescription, DefaultUpdate, DefaultResolve
	if c.PerJob {
		defTitle, defDesc, defUpdate, defResolve = DefaultJobTitle, DefaultJobDescription, DefaultJobUpdate, DefaultJobResolve
	}
	parse := func(key, text, def string) *template.Template {
		if strings.TrimSpace(text) == "" {
			text = def
		}
		t, err := template.New(key).Option("missingkey=error").Funcs(templateFuncs).Parse(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", key, err))
			return nil
		}
		for _, reason := range []string{"success", "quiet period"} {
			if _, err := render(t, sampleData(reason, c.PerJob)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", key, err))
				return nil
			}
		}
		return t
	}
	t := &templates{
		title:       parse("title", c.Title, defTitle),
		description: parse("description", c.Description, defDesc),
		update:      parse("update", c.Update, defUpdate),
		resolve:     parse("resolve", c.Resolve, defResolve),
	}
	return t, errs
}

func sampleData(reason string, perJob bool) *TemplateData {
	ev := sampleEvent()
	comp := "Zuul"
	if perJob {
		ev.Job, ev.ID = "scs-check-gx-scs-main", "sample/scs-check-gx-scs-main"
		ev.Builds = []zuul.Build{{JobName: ev.Job, Voting: true, Result: "FAILURE", LogURL: "https://logs.example.org/1/",
			WebURL: "https://zuul.example.org/t/scs/build/1"}}
		comp = "gx-scs"
	}
	return &TemplateData{Event: &ev, Route: "route", Key: map[string]string{"tenant": "scs"}, Result: "FAILURE",
		Failed: votingFailures(&ev), FailedBuilds: ev.FailedBuilds(), Run: 2, At: time.Unix(3600, 0).UTC(),
		Since: time.Unix(0, 0).UTC(), Previous: &ev, Reason: reason, QuietPeriod: time.Hour, Job: ev.Job, Component: comp}
}

func render(t *template.Template, d *TemplateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// oneLine makes a display name of a rendered title: one line of at most MaxTitle
// characters.
func oneLine(s string) string { return fit(s, MaxTitle) }

// splitUpdate splits a rendered update template into display name (first line) and text
// (the rest, one paragraph of at most MaxUpdate characters less room for the reference).
func splitUpdate(s string) (name, text string) {
	s = strings.TrimLeft(s, "\n")
	name, text, _ = strings.Cut(s, "\n")
	return fit(name, MaxUpdateTitle), fit(text, MaxUpdate)
}
