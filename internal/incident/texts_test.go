package incident_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// textsSink is a route with the default templates (and a quiet period, so that its
// closing text is rendered too) on a manager that calls nothing.
func textsSink(t *testing.T) *incident.Sink {
	t.Helper()
	m := incident.NewManager(incident.ManagerOptions{Log: zerolog.Nop(), BridgeID: "scs-prod"})
	cfg := incident.DefaultRouteConfig()
	cfg.Component = "Zuul"
	cfg.QuietPeriod = 36 * 60 * 60 * 1e9
	s, err := m.AddRoute("nightly-health-internal-route", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	// zuulCode matches a Zuul result code (FAILURE, POST_FAILURE, TIMED_OUT, ...).
	zuulCode = regexp.MustCompile(`\b[A-Z]{4,}(_[A-Z]+)*\b`)
)

// checkPublic asserts what every public text must be: within its limit, one paragraph,
// no machine text (marker, route name, report id or its hash, Zuul result codes), no
// non-voting job.
func checkPublic(t *testing.T, what, text string, limit int, ev *zuul.Event) {
	t.Helper()
	if n := utf8.RuneCountInString(text); n > limit || n == 0 {
		t.Errorf("%s: %d characters, want 1..%d: %q", what, n, limit, text)
	}
	if strings.ContainsAny(text, "\n\r\t") {
		t.Errorf("%s: has a line break or tab: %q", what, text)
	}
	rh := sha256.Sum256([]byte(ev.ID))
	for _, bad := range []string{"zuul-bridge", "route", "nightly-health-internal-route", "report=", "key=", ev.ID,
		hex.EncodeToString(rh[:])[:20], ev.Tenant + ")", "Buildset:", "tenant"} {
		if bad != "" && strings.Contains(text, bad) {
			t.Errorf("%s: contains %q: %q", what, bad, text)
		}
	}
	if c := zuulCode.FindString(text); c != "" && c != "UTC" {
		t.Errorf("%s: contains the Zuul code %q: %q", what, c, text)
	}
	for _, b := range ev.Builds {
		if !b.Voting && b.Failed() && strings.Contains(text, b.JobName+" ") {
			t.Errorf("%s: names the non-voting job %s: %q", what, b.JobName, text)
		}
	}
	if strings.Contains(text, "automatically") {
		t.Errorf("%s: holds machine text: %q", what, text)
	}
}

// Every sample report, rendered through the default templates, gives texts a person on
// the status page can read: within the limits, one paragraph, no machine text, one link.
func TestSampleTextsArePublic(t *testing.T) {
	s := textsSink(t)
	rendered := 0
	for _, smp := range samples.All() {
		ev, err := zuul.Decode(smp.Payload)
		if err != nil {
			t.Fatalf("%s: %v", smp.Name, err)
		}
		txt, err := s.Texts(ev)
		if err != nil {
			t.Fatalf("%s: %v", smp.Name, err)
		}
		switch ev.Outcome {
		case zuul.OutcomeFailure:
			rendered++
			checkPublic(t, smp.Name+" title", txt.Title, incident.MaxTitle, ev)
			if strings.Contains(strings.ToLower(txt.Title), "fail") {
				t.Errorf("%s: the title speaks of the state, untrue once the incident ended: %q", smp.Name, txt.Title)
			}
			if !regexp.MustCompile(`started failing on \d+ \w+ \d{4} at \d\d:\d\d UTC`).MatchString(txt.Description) {
				t.Errorf("%s: the description does not say since when: %q", smp.Name, txt.Description)
			}
			checkPublic(t, smp.Name+" description", txt.Description, incident.MaxDescription, ev)
			checkPublic(t, smp.Name+" update title", txt.UpdateTitle, incident.MaxUpdateTitle, ev)
			checkPublic(t, smp.Name+" update", txt.Update, incident.MaxUpdate, ev)
			checkPublic(t, smp.Name+" quiet-period title", txt.ResolveTitle, incident.MaxUpdateTitle, ev)
			checkPublic(t, smp.Name+" quiet-period text", txt.Resolve, incident.MaxUpdate, ev)
			if n := strings.Count(txt.Description, "://"); n > 1 {
				t.Errorf("%s: description has %d links, want at most 1 (the buildset page): %q", smp.Name, n, txt.Description)
			}
			if ev.BuildsetURL != "" && !strings.Contains(txt.Description, ev.BuildsetURL) {
				t.Errorf("%s: description lacks the buildset page: %q", smp.Name, txt.Description)
			}
			body, _, _ := strings.Cut(txt.Description, " Details:")
			if strings.Contains(txt.Update, body) {
				t.Errorf("%s: the update repeats the description: %q", smp.Name, txt.Update)
			}
			if !regexp.MustCompile(`, 2 (nights|hours|runs) in a row`).MatchString(txt.Update) {
				t.Errorf("%s: the update does not say how long it fails: %q", smp.Name, txt.Update)
			}
		case zuul.OutcomeSuccess:
			rendered++
			checkPublic(t, smp.Name+" closing title", txt.ResolveTitle, incident.MaxUpdateTitle, ev)
			checkPublic(t, smp.Name+" closing text", txt.Resolve, incident.MaxUpdate, ev)
		default:
			if txt != (incident.PublicTexts{}) {
				t.Errorf("%s: a %s report renders texts: %+v", smp.Name, ev.Outcome, txt)
			}
		}
	}
	if rendered < 10 {
		t.Fatalf("only %d samples rendered", rendered)
	}
}

// A buildset of 120 failed jobs gives a text as short as one of four: three jobs are
// named, the rest counted; with very long job names the text is cut before the link.
func TestTextsOfALargeBuildsetStayShort(t *testing.T) {
	s := textsSink(t)
	mk := func(jobs int, nameLen int) *zuul.Event {
		ev := &zuul.Event{ID: "report-of-a-large-buildset", Action: "failure", Tenant: "scs", Pipeline: "periodic-daily", Project: "SovereignCloudStack/standards",
			Branch: "main", Result: "FAILURE", Outcome: zuul.OutcomeFailure, BuildsetURL: "https://zuul.scs.community/t/scs/buildset/1"}
		for i := range jobs {
			name := fmt.Sprintf("job-%03d-%s", i, strings.Repeat("x", nameLen))
			ev.Builds = append(ev.Builds, zuul.Build{JobName: name, Voting: true, Result: "POST_FAILURE",
				LogURL: "https://logs.example.org/" + strings.Repeat("a", 150)})
		}
		return ev
	}
	small, err := s.Texts(mk(4, 10))
	if err != nil {
		t.Fatal(err)
	}
	large, err := s.Texts(mk(120, 10))
	if err != nil {
		t.Fatal(err)
	}
	if d := len(large.Description) - len(small.Description); d > 3 {
		t.Errorf("120 jobs instead of 4 make the description %d characters longer:\n%s\n%s", d, small.Description, large.Description)
	}
	if !strings.Contains(large.Description, "and 117 more jobs failed") || !strings.Contains(large.Description, "failed in a post-run step") {
		t.Errorf("large description: %q", large.Description)
	}
	huge, err := s.Texts(mk(120, 400))
	if err != nil {
		t.Fatal(err)
	}
	ev := mk(120, 400)
	checkPublic(t, "huge description", huge.Description, incident.MaxDescription, ev)
	checkPublic(t, "huge update", huge.Update, incident.MaxUpdate, ev)
	if !strings.Contains(huge.Description, ev.BuildsetURL) {
		t.Errorf("the buildset page was cut off: %q", huge.Description)
	}
}

// Every job event of the large standards sample, rendered through the per-job defaults,
// gives public texts: within the limits, no machine text, the cloud and the check named,
// one link (the job's build page), and a title true in every phase.
func TestJobTextsArePublic(t *testing.T) {
	m := incident.NewManager(incident.ManagerOptions{Log: zerolog.Nop(), BridgeID: "scs-prod"})
	cfg := incident.DefaultRouteConfig()
	cfg.PerJob = true
	cfg.Component = `{{ .Job | trimPrefix "scs-check-" | trimSuffix "-main" }}`
	cfg.QuietPeriod = 36 * 60 * 60 * 1e9
	s, err := m.AddRoute("nightly-health-internal-route", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := zuul.Decode(samples.Get("periodic-daily_failure_large_buildset.json"))
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, je := range ev.SplitJobs() {
		txt, err := s.Texts(je)
		if err != nil {
			t.Fatal(err)
		}
		cloud := strings.TrimPrefix(je.Job, "scs-check-")
		switch je.Outcome {
		case zuul.OutcomeFailure:
			failed++
			if txt.Title != "SCS compliance check of "+cloud {
				t.Errorf("%s: title %q", je.Job, txt.Title)
			}
			for what, text := range map[string]string{"title": txt.Title, "description": txt.Description, "update": txt.Update, "quiet": txt.Resolve} {
				limit := map[string]int{"title": incident.MaxTitle, "description": incident.MaxDescription, "update": incident.MaxUpdate, "quiet": incident.MaxUpdate}[what]
				checkPublic(t, je.Job+" "+what, text, limit, je)
			}
			if !strings.Contains(txt.Description, "(job "+je.Job+")") || strings.Count(txt.Description, "://") != 1 ||
				!strings.Contains(txt.Description, je.Builds[0].WebURL) {
				t.Errorf("%s: description %q", je.Job, txt.Description)
			}
		case zuul.OutcomeSuccess:
			checkPublic(t, je.Job+" closing", txt.Resolve, incident.MaxUpdate, je)
		}
	}
	if failed != 16 {
		t.Errorf("%d failing job events rendered, want 16", failed)
	}
}
