package incident

import (
	"testing"
	"unicode/utf8"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// FuzzTemplates: any template text a rules file may hold is either rejected by Validate
// or renders, for any event values, without panicking into a display name the API takes
// (one line, at most 200 bytes, valid UTF-8).
func FuzzTemplates(f *testing.F) {
	for _, s := range []string{DefaultTitle, DefaultDescription, DefaultUpdate, DefaultResolve,
		"{{.Event.Project}} {{range .FailedBuilds}}{{.JobName}}{{end}}", "{{.Nope}}", "{{", "{{index .Key \"tenant\"}}"} {
		f.Add(s, "SovereignCloudStack/standards", "FAILURE")
	}
	f.Add("{{.Event.Project}}", "ü\xff"+string(make([]byte, 300)), "DOCS LINT FAILED (non-blocking)")
	f.Fuzz(func(t *testing.T, tmpl, project, result string) {
		cfg := DefaultRouteConfig()
		cfg.Component = "Zuul"
		cfg.Title, cfg.Update = tmpl, tmpl
		if err := cfg.Validate(); err != nil {
			return
		}
		ev := &zuul.Event{Tenant: "t", Pipeline: "periodic-daily", Project: project, Result: result, Outcome: zuul.OutcomeFailure,
			Builds: []zuul.Build{{JobName: project, Result: result}}}
		d := &TemplateData{Event: ev, Route: "r", Key: map[string]string{"tenant": "t"}, Result: result, FailedBuilds: ev.FailedBuilds(), Run: 1, Reason: "success"}
		for _, tp := range cfg.tmpl.all() {
			out, err := render(tp, d)
			if err != nil {
				continue
			}
			name := oneLine(out)
			if len(name) > 200 || !utf8.ValidString(name) && utf8.ValidString(out) {
				t.Fatalf("display name %q", name)
			}
			n, _ := splitUpdate(out)
			if len(n) > 200 {
				t.Fatalf("update name %q", n)
			}
		}
	})
}
