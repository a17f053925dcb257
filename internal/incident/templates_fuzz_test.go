package incident

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// FuzzTemplates: any template text a rules file may hold is either rejected by Validate
// or renders, for any event values, without panicking into texts the API takes and the
// status page shows: one paragraph, valid UTF-8, within the limits of each field.
func FuzzTemplates(f *testing.F) {
	for _, s := range []string{DefaultTitle, DefaultDescription, DefaultUpdate, DefaultResolve,
		"{{.Event.Project}} {{range .FailedBuilds}}{{.JobName}}{{end}}", "{{.Nope}}", "{{", "{{index .Key \"tenant\"}}",
		"{{failures .Failed}} {{when .At}} {{clock .Since}}", "{{checks .Event.Pipeline}}\n{{inARow .Run .Event.Pipeline}}",
		"{{plain .Result}} {{outcome .Result}} {{duration .QuietPeriod}} {{lower .Event.Project}}", "{{failures .Result}}"} {
		f.Add(s, "SovereignCloudStack/standards", "FAILURE")
	}
	f.Add("{{.Event.Project}}", "ü\xff"+string(make([]byte, 300)), "DOCS LINT FAILED (non-blocking)")
	f.Add("{{.Event.Project}}\n{{.Event.Project}} https://x.example/{{.Event.Project}}", strings.Repeat("a ", 400), "TIMED_OUT")
	f.Fuzz(func(t *testing.T, tmpl, project, result string) {
		cfg := DefaultRouteConfig()
		cfg.Component = "Zuul"
		cfg.Title, cfg.Description, cfg.Update, cfg.Resolve = tmpl, tmpl, tmpl, tmpl
		if err := cfg.Validate(); err != nil {
			return
		}
		m := NewManager(ManagerOptions{})
		s, err := m.AddRoute("r", cfg)
		if err != nil {
			t.Fatal(err)
		}
		ev := &zuul.Event{Tenant: "t", Pipeline: "periodic-daily", Project: project, Result: result, Outcome: zuul.OutcomeFailure,
			Timestamp: time.Unix(1736828395, 0), BuildsetURL: "https://zuul.example/t/t/buildset/" + project,
			Builds: []zuul.Build{{JobName: project, Voting: true, Result: result}, {JobName: "nv", Result: result}}}
		texts, err := s.Texts(ev)
		if err != nil {
			return // a template that fails on these values: a delivery error, not a panic
		}
		for _, c := range []struct {
			name, text string
			max        int
		}{
			{"title", texts.Title, MaxTitle}, {"description", texts.Description, MaxDescription},
			{"update title", texts.UpdateTitle, MaxUpdateTitle}, {"update", texts.Update, MaxUpdate},
		} {
			if utf8.RuneCountInString(c.text) > c.max || !utf8.ValidString(c.text) || strings.ContainsAny(c.text, "\n\r") {
				t.Fatalf("%s: %q", c.name, c.text)
			}
		}
	})
}
