// Package zuul decodes the reports that Zuul's MQTT reporter publishes, for every Zuul
// version from 3.x to current master, into one Event that the rest of the bridge uses.
// It imports nothing of the bridge.
package zuul

import "time"

// Outcome is the class of a report, derived from buildset.result (or, for payloads older
// than 3.16, from the action and the voting builds).
type Outcome string

const (
	// OutcomeSuccess: a final report whose buildset succeeded (buildset.result SUCCESS).
	OutcomeSuccess Outcome = "success"
	// OutcomeFailure: a final report whose buildset did not succeed: any buildset.result
	// other than SUCCESS, NO_JOBS and DEQUEUED (FAILURE, MERGE_CONFLICT, CONFIG_ERROR, ...).
	OutcomeFailure Outcome = "failure"
	// OutcomeNeutral: a final report that is neither: NO_JOBS (nothing ran) and DEQUEUED
	// (the item was removed before it reported). It neither opens nor resolves an incident.
	OutcomeNeutral Outcome = "neutral"
	// OutcomePending: enqueue and start reports; never a failure.
	OutcomePending Outcome = "pending"
)

// Event is one decoded Zuul report. Strings are "" where Zuul sent null or nothing.
type Event struct {
	// ID is the stable identity of the report: a redelivery of the same report has the same ID,
	// and so has the same report read back from zuul-web; two different reports never share
	// one. See identity in decode.go for its forms.
	ID string

	Timestamp   time.Time // when Zuul built the report (zero if absent, Zuul < 3.3)
	TriggerTime time.Time
	EnqueueTime time.Time

	Action    string // reporter section that fired: enqueue, start, success, failure, ...
	Tenant    string
	Pipeline  string
	Queue     string
	Project   string
	Branch    string
	Ref       string
	Change    string // "812", "937281" or "" for branches, tags and refs
	Patchset  string
	ChangeURL string
	CommitID  string
	Owner     string
	Message   string // the pipeline message, as sent (may hold "Warning:" blocks)

	ItemUUID    string // top-level uuid (Zuul >= 4.7)
	ZuulRef     string
	ZuulEventID string

	BuildsetUUID string
	Result       string // buildset.result as sent: SUCCESS, FAILURE, CONFIG_ERROR, ... or ""
	Outcome      Outcome
	// BuildsetURL is <web root>/t/<tenant>/buildset/<uuid>, derived from a build's web_url,
	// since Zuul sends no buildset URL. "" when no build carries a web_url.
	BuildsetURL string

	Builds []Build

	// Job is the job name of a per-job event (SplitJobs): the event of one build of a
	// buildset, which is then its only build. "" for the event of a whole buildset.
	Job string `json:",omitempty"`

	// Source is where the report came from: SourceMQTT (Decode) or SourceREST (a
	// buildset read back from zuul-web by the reconciler).
	Source string
	// Recovered marks a report that only the REST reconciliation found: its MQTT
	// message never arrived ("missed earlier").
	Recovered bool

	// Raw is the payload as received. It aliases the decoder's input: do not modify it.
	Raw []byte
}

// Build is one entry of buildset.builds.
type Build struct {
	JobName string
	JobUUID string
	UUID    string
	Voting  bool
	// Result as sent: an upper-case code, free text from a job's success/failure-message,
	// or "" while the build has no result.
	Result    string
	LogURL    string
	WebURL    string
	StartTime time.Time
	EndTime   time.Time
}

// Sources of an Event.
const (
	SourceMQTT = "mqtt"
	SourceREST = "zuul-web"
)

// Final reports whether the report carries an outcome (not enqueue or start).
func (e *Event) Final() bool { return e.Outcome != OutcomePending }

// Failed reports whether this build counts as failed for alerting: any result outside
// SUCCESS and SKIPPED, including free text and a missing result, in a final report.
func (b *Build) Failed() bool {
	switch b.Result {
	case "SUCCESS", "SKIPPED":
		return false
	}
	return true
}

// FailedBuilds returns the failed builds of a final report, voting and non-voting, in
// job-graph order. It returns nil for reports that are not final.
func (e *Event) FailedBuilds() []Build {
	if !e.Final() {
		return nil
	}
	var out []Build
	for _, b := range e.Builds {
		if b.Failed() {
			out = append(out, b)
		}
	}
	return out
}

// Field returns a routing field by name, as used in rules, subjects and incident keys:
// tenant, pipeline, project, branch, change, action, result (the buildset result, or the
// outcome class when Zuul sent none), outcome, ref, queue, job (the job of a per-job event,
// "" for a buildset). ok is false for an unknown name.
func (e *Event) Field(name string) (value string, ok bool) {
	switch name {
	case "tenant":
		return e.Tenant, true
	case "pipeline":
		return e.Pipeline, true
	case "project":
		return e.Project, true
	case "branch":
		return e.Branch, true
	case "change":
		return e.Change, true
	case "action":
		return e.Action, true
	case "result":
		if e.Result == "" {
			return string(e.Outcome), true
		}
		return e.Result, true
	case "outcome":
		return string(e.Outcome), true
	case "ref":
		return e.Ref, true
	case "queue":
		return e.Queue, true
	case "job":
		return e.Job, true
	}
	return "", false
}

// FieldNames lists the names Field accepts, for error messages.
var FieldNames = []string{"tenant", "pipeline", "project", "branch", "change", "action", "result", "outcome", "ref", "queue", "job"}
