package zuul

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DecodeError says why a payload is not a Zuul report. Reason is a short, bounded word
// for metrics labels; Err carries the detail for the log.
type DecodeError struct {
	Reason string // not_json, invalid_utf8, wrong_shape, missing_field
	Err    error
}

func (e *DecodeError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Reasons a payload is rejected; bounded, so they can label a metric.
const (
	ReasonNotJSON      = "not_json"
	ReasonInvalidUTF8  = "invalid_utf8"
	ReasonWrongShape   = "wrong_shape"
	ReasonMissingField = "missing_field"
)

// wireReport is the payload as Zuul writes it. Only what the bridge uses is decoded;
// unknown keys (Zuul adds fields without notice) are skipped. Pointers tell null or
// absent from "".
type wireReport struct {
	Timestamp   flexTime   `json:"timestamp"`
	Action      *string    `json:"action"`
	Tenant      *string    `json:"tenant"`
	ZuulRef     *string    `json:"zuul_ref"`
	Pipeline    *string    `json:"pipeline"`
	Queue       *string    `json:"queue"`
	Project     *string    `json:"project"`
	Branch      *string    `json:"branch"`
	ChangeURL   *string    `json:"change_url"`
	Change      flexChange `json:"change"`
	Patchset    flexChange `json:"patchset"`
	CommitID    *string    `json:"commit_id"`
	Owner       *string    `json:"owner"`
	Ref         *string    `json:"ref"`
	Message     *string    `json:"message"`
	TriggerTime flexTime   `json:"trigger_time"`
	EnqueueTime flexTime   `json:"enqueue_time"`
	UUID        *string    `json:"uuid"`
	ZuulEventID *string    `json:"zuul_event_id"`
	Buildset    *struct {
		UUID   *string     `json:"uuid"`
		Result *string     `json:"result"`
		Builds []wireBuild `json:"builds"`
	} `json:"buildset"`
}

type wireBuild struct {
	JobName   *string  `json:"job_name"`
	JobUUID   *string  `json:"job_uuid"`
	Voting    *bool    `json:"voting"`
	UUID      *string  `json:"uuid"`
	StartTime flexTime `json:"start_time"`
	EndTime   flexTime `json:"end_time"`
	LogURL    *string  `json:"log_url"`
	WebURL    *string  `json:"web_url"`
	Result    *string  `json:"result"`
}

// Decode turns one MQTT payload into an Event. It accepts every layout from Zuul 3.1 to
// current master (see shared/zuul/WIRE-FORMAT.md) and rejects, with a *DecodeError, what
// is not a Zuul report: not JSON, invalid UTF-8, not an object, a field of the wrong type,
// or a report without action, tenant, pipeline, project or buildset.
// ev.Raw aliases payload.
func Decode(payload []byte) (*Event, error) {
	// encoding/json would silently turn invalid UTF-8 into U+FFFD; a report that is not
	// UTF-8 is corrupt, and a corrupt report must be seen, not half-read.
	if !utf8.Valid(payload) {
		return nil, &DecodeError{ReasonInvalidUTF8, errors.New("payload is not valid UTF-8")}
	}
	var w wireReport
	if err := json.Unmarshal(payload, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" { // the top level itself: an array, a string, a number
				return nil, &DecodeError{ReasonWrongShape, fmt.Errorf("payload is a JSON %s, not an object", te.Value)}
			}
			return nil, &DecodeError{ReasonWrongShape, fmt.Errorf("field %s: JSON %s where Zuul sends %s", te.Field, te.Value, typeName(te.Type.String()))}
		}
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, &DecodeError{ReasonWrongShape, err}
		}
		return nil, &DecodeError{ReasonNotJSON, err}
	}
	var missing []string
	need := func(name string, v *string) {
		if v == nil || *v == "" {
			missing = append(missing, name)
		}
	}
	need("action", w.Action)
	need("tenant", w.Tenant)
	need("pipeline", w.Pipeline)
	if w.Project == nil {
		missing = append(missing, "project")
	}
	if w.Buildset == nil {
		missing = append(missing, "buildset")
	}
	if len(missing) > 0 {
		return nil, &DecodeError{ReasonMissingField, fmt.Errorf("not a Zuul report: missing %s", strings.Join(missing, ", "))}
	}

	ev := &Event{
		Timestamp:    w.Timestamp.t,
		TriggerTime:  w.TriggerTime.t,
		EnqueueTime:  w.EnqueueTime.t,
		Action:       *w.Action,
		Tenant:       *w.Tenant,
		Pipeline:     *w.Pipeline,
		Queue:        str(w.Queue),
		Project:      *w.Project,
		Branch:       str(w.Branch),
		Ref:          str(w.Ref),
		Change:       w.Change.s,
		Patchset:     w.Patchset.s,
		ChangeURL:    str(w.ChangeURL),
		CommitID:     str(w.CommitID),
		Owner:        str(w.Owner),
		Message:      str(w.Message),
		ItemUUID:     str(w.UUID),
		ZuulRef:      str(w.ZuulRef),
		ZuulEventID:  str(w.ZuulEventID),
		BuildsetUUID: str(w.Buildset.UUID),
		Result:       str(w.Buildset.Result),
		Source:       SourceMQTT,
		Raw:          payload,
	}
	if n := len(w.Buildset.Builds); n > 0 {
		ev.Builds = make([]Build, n)
		for i, b := range w.Buildset.Builds {
			ev.Builds[i] = Build{
				JobName:   str(b.JobName),
				JobUUID:   str(b.JobUUID),
				UUID:      str(b.UUID),
				Voting:    b.Voting == nil || *b.Voting, // Zuul's default: a job votes
				Result:    str(b.Result),
				LogURL:    str(b.LogURL),
				WebURL:    str(b.WebURL),
				StartTime: b.StartTime.t,
				EndTime:   b.EndTime.t,
			}
		}
	}
	ev.Outcome = outcome(ev, w.Buildset.Result != nil)
	ev.BuildsetURL = buildsetURL(ev)
	ev.ID = identity(ev, &w)
	return ev, nil
}

// outcome classifies a report (DESIGN.md: "result: [failure]"). hasResult is false for
// payloads older than 3.16 and for enqueue/start reports, where the action and the voting
// builds decide.
func outcome(ev *Event, hasResult bool) Outcome {
	switch ev.Action {
	case "enqueue", "start":
		return OutcomePending // never a failure, whatever else the payload says
	}
	if hasResult && ev.Result != "" {
		switch ev.Result {
		case "SUCCESS":
			return OutcomeSuccess
		case "NO_JOBS", "DEQUEUED":
			return OutcomeNeutral
		}
		return OutcomeFailure
	}
	switch ev.Action {
	case "success":
		return OutcomeSuccess
	case "failure", "merge-failure", "merge-conflict", "config-error":
		return OutcomeFailure
	case "dequeue", "no-jobs":
		return OutcomeNeutral
	}
	// "disabled", or an action of a newer Zuul: Zuul's own rule on the voting builds.
	voting, skipped := 0, 0
	for i := range ev.Builds {
		b := &ev.Builds[i]
		if !b.Voting {
			continue
		}
		voting++
		switch b.Result {
		case "SUCCESS":
		case "SKIPPED":
			skipped++
		case "":
			return OutcomePending // a build without result: nothing final to say
		default:
			return OutcomeFailure
		}
	}
	if voting == 0 {
		return OutcomePending
	}
	if skipped == voting {
		return OutcomeFailure
	}
	return OutcomeSuccess
}

// buildsetURL derives <web root>/t/<tenant>/buildset/<uuid> from the first build page URL
// (".../build/<build uuid>"), as the SCS matrix relay does. Before 4.7 web_url could be a
// log URL, and without a web root it is relative: then there is no buildset URL.
func buildsetURL(ev *Event) string {
	if ev.BuildsetUUID == "" {
		return ""
	}
	for i := range ev.Builds {
		b := &ev.Builds[i]
		if b.UUID == "" || !strings.HasPrefix(b.WebURL, "http") {
			continue
		}
		root, ok := strings.CutSuffix(b.WebURL, "build/"+b.UUID)
		if !ok {
			root, ok = strings.CutSuffix(b.WebURL, "build/"+b.UUID+"/")
		}
		if ok && strings.HasSuffix(root, "/") {
			return root + "buildset/" + ev.BuildsetUUID
		}
	}
	return ""
}

// identity is the report's stable ID, the same for a redelivery and for the same report
// read back from zuul-web's REST API (issue: MQTT and REST must be applied once):
//
//   - a final report with a buildset uuid and result: "<buildset uuid>-<RESULT>". The
//     buildset uuid names one run (a gate reset or dequeue gets a new one), the result
//     separates the two reports of a dependency cycle (SUCCESS, then MERGE_FAILURE).
//     zuul-web knows both; it does not know the item uuid.
//   - otherwise (enqueue, start; Zuul < 3.16 without buildset.result):
//     "<item uuid>-<action>-<buildset uuid>" when Zuul >= 4.7 sent an item uuid,
//   - else a hash of the fields that name the item and the report, including Zuul's own
//     timestamps, which a redelivery repeats byte for byte.
func identity(ev *Event, w *wireReport) string {
	if ev.Final() && ev.BuildsetUUID != "" && ev.Result != "" {
		return ev.BuildsetUUID + "-" + ev.Result
	}
	if ev.ItemUUID != "" {
		return ev.ItemUUID + "-" + ev.Action + "-" + ev.BuildsetUUID
	}
	h := sha256.New()
	for _, s := range []string{ev.Tenant, ev.Pipeline, ev.Project, ev.Branch, ev.Ref, ev.Change, ev.Patchset,
		ev.Action, ev.BuildsetUUID, ev.ZuulRef, ev.ZuulEventID, w.EnqueueTime.raw, w.Timestamp.raw} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "h" + hex.EncodeToString(h.Sum(nil)[:16])
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// typeName turns a Go type in an UnmarshalTypeError into the JSON words an operator reads.
func typeName(goType string) string {
	switch {
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "[]"):
		return "an array"
	case strings.Contains(goType, "struct"):
		return "an object"
	}
	return goType
}

// fieldError is returned by the flexible types' UnmarshalJSON.
type fieldError struct {
	what string
	got  []byte
}

func (e *fieldError) Error() string {
	got := e.got
	if len(got) > 40 {
		got = append(got[:37:37], "..."...)
	}
	return fmt.Sprintf("%s: unexpected JSON %s", e.what, got)
}

// flexChange holds `change` and `patchset`: a string for Gerrit, an integer for GitHub,
// GitLab and Pagure, "" for refs, null in hand-written payloads.
type flexChange struct{ s string }

func (c *flexChange) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &c.s)
	case bytes.Equal(b, []byte("null")):
		c.s = ""
		return nil
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		if _, err := strconv.ParseInt(string(b), 10, 64); err != nil {
			return &fieldError{"change", b}
		}
		c.s = string(b)
		return nil
	}
	return &fieldError{"change", b}
}

// flexTime holds Zuul's timestamps: epoch seconds as a JSON float (Python's time.time()),
// or null. A numeric string is accepted too: Zuul's docs show quoted values and
// hand-written publishers copy them. raw keeps the text for the legacy identity hash.
type flexTime struct {
	t   time.Time
	raw string
}

func (f *flexTime) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) > 1 && b[0] == '"' && b[len(b)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	// Year 1 to 9999 covers every sane clock; anything else is a corrupt field.
	if err != nil || math.IsNaN(v) || v < -62135596800 || v > 253402300799 {
		return &fieldError{"timestamp", b}
	}
	sec, frac := math.Modf(v)
	f.t = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	f.raw = s
	return nil
}
