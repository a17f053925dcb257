package natspub

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Schema names the body's version. A consumer checks it; a breaking change gets a new one.
const Schema = "zuul-bridge.event/v1"

// Body is the JSON message published to NATS. docs/nats-messages.md documents every field; keep both
// in step.
type Body struct {
	Schema       string      `json:"schema"`
	ID           string      `json:"id"`
	Route        string      `json:"route"`
	Source       string      `json:"source"`
	Recovered    bool        `json:"recovered"`
	Summary      string      `json:"summary"`
	Tenant       string      `json:"tenant"`
	Pipeline     string      `json:"pipeline"`
	Project      string      `json:"project"`
	Branch       string      `json:"branch"`
	Ref          string      `json:"ref"`
	Change       string      `json:"change"`
	Patchset     string      `json:"patchset"`
	ChangeURL    string      `json:"change_url"`
	Action       string      `json:"action"`
	Result       string      `json:"result"`
	Outcome      string      `json:"outcome"`
	ItemUUID     string      `json:"item_uuid"`
	BuildsetUUID string      `json:"buildset_uuid"`
	BuildsetURL  string      `json:"buildset_url"`
	Timestamp    *time.Time  `json:"timestamp"`
	Message      string      `json:"message"`
	FailedJobs   []FailedJob `json:"failed_jobs"`
	// Job is the job of a per-job event (a route with `split: jobs`); absent otherwise.
	Job string          `json:"job,omitempty"`
	Raw json.RawMessage `json:"raw,omitempty"`
}

// FailedJob is one failed build of the report.
type FailedJob struct {
	Name     string `json:"name"`
	Voting   bool   `json:"voting"`
	Result   string `json:"result"`
	LogURL   string `json:"log_url"`
	BuildURL string `json:"build_url"`
}

// NewBody builds the message body of a report for a route.
func NewBody(ev *zuul.Event, route string, includeRaw bool) *Body {
	result, _ := ev.Field("result")
	failed := ev.FailedBuilds()
	b := &Body{
		Schema:       Schema,
		ID:           ev.ID,
		Route:        route,
		Source:       ev.Source,
		Recovered:    ev.Recovered,
		Summary:      summary(ev, result, failed),
		Tenant:       ev.Tenant,
		Pipeline:     ev.Pipeline,
		Project:      ev.Project,
		Branch:       ev.Branch,
		Ref:          ev.Ref,
		Change:       ev.Change,
		Patchset:     ev.Patchset,
		ChangeURL:    ev.ChangeURL,
		Action:       ev.Action,
		Result:       result,
		Outcome:      string(ev.Outcome),
		ItemUUID:     ev.ItemUUID,
		BuildsetUUID: ev.BuildsetUUID,
		BuildsetURL:  ev.BuildsetURL,
		Message:      MessageText(ev.Message),
		FailedJobs:   []FailedJob{},
		Job:          ev.Job,
	}
	if !ev.Timestamp.IsZero() {
		ts := ev.Timestamp
		b.Timestamp = &ts
	}
	for _, fb := range failed {
		b.FailedJobs = append(b.FailedJobs, FailedJob{Name: fb.JobName, Voting: fb.Voting, Result: fb.Result, LogURL: fb.LogURL, BuildURL: fb.WebURL})
	}
	if includeRaw && len(ev.Raw) > 0 {
		b.Raw = json.RawMessage(ev.Raw)
	}
	return b
}

// MessageText is Zuul's pipeline message without the "Warning:" and "Debug information:"
// blocks Zuul appends (the SCS matrix relay cuts them too), trimmed.
func MessageText(msg string) string {
	for _, marker := range []string{"\nWarning:", "\nDebug information:"} {
		if i := strings.Index(msg, marker); i >= 0 {
			msg = msg[:i]
		}
	}
	return strings.TrimSpace(msg)
}

// summary is one line a chat bot can post as is, e.g.
// "FAILURE periodic-daily SovereignCloudStack/standards@main: 1 of 4 jobs failed (scs-check-kaas1: TIMED_OUT) https://zuul.../buildset/...";
// result and failed are the report's, as NewBody has them.
func summary(ev *zuul.Event, result string, failed []zuul.Build) string {
	var b strings.Builder
	b.WriteString(strings.ToUpper(result))
	b.WriteString(" ")
	b.WriteString(ev.Pipeline)
	b.WriteString(" ")
	b.WriteString(ev.Project)
	switch {
	case ev.Change != "":
		b.WriteString(" change ")
		b.WriteString(ev.Change)
	case ev.Branch != "":
		b.WriteString("@")
		b.WriteString(ev.Branch)
	case ev.Ref != "":
		b.WriteString("@")
		b.WriteString(ev.Ref)
	}
	if ev.Tenant != "" {
		b.WriteString(" [")
		b.WriteString(ev.Tenant)
		b.WriteString("]")
	}
	switch {
	case len(failed) > 0:
		b.WriteString(": ")
		b.WriteString(strconv.Itoa(len(failed)))
		b.WriteString(" of ")
		b.WriteString(strconv.Itoa(len(ev.Builds)))
		b.WriteString(" jobs failed (")
		const show = 3
		for i, fb := range failed {
			if i == show {
				b.WriteString(", +")
				b.WriteString(strconv.Itoa(len(failed) - show))
				b.WriteString(" more")
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(fb.JobName)
			b.WriteString(": ")
			b.WriteString(fb.Result)
			if !fb.Voting {
				b.WriteString(" non-voting")
			}
		}
		b.WriteString(")")
	case ev.Outcome == zuul.OutcomeFailure:
		if msg := firstLine(MessageText(ev.Message)); msg != "" {
			b.WriteString(": ")
			b.WriteString(msg)
		}
	}
	link := ev.BuildsetURL
	if link == "" {
		link = ev.ChangeURL
	}
	if link != "" {
		b.WriteString(" ")
		b.WriteString(link)
	}
	return b.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
