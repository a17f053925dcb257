package zuul

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
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

// parsers are reused: a fastjson parser keeps its buffers between payloads, which is most
// of why decoding costs a third of encoding/json's (see internal/bench).
var parsers fastjson.ParserPool

// Decode turns one MQTT payload into an Event. It accepts every layout from Zuul 3.1 to
// current master and rejects, with a *DecodeError, what
// is not a Zuul report: not JSON, invalid UTF-8, not an object, a field of the wrong type,
// or a report without action, tenant, pipeline, project or buildset. Unknown keys are
// skipped (Zuul adds fields without notice); null stands for absent.
// ev.Raw aliases payload.
func Decode(payload []byte) (*Event, error) {
	// A report that is not UTF-8 is corrupt, and a corrupt report must be seen, not
	// half-read (encoding/json would have turned the bad bytes into U+FFFD).
	if !utf8.Valid(payload) {
		return nil, &DecodeError{ReasonInvalidUTF8, errors.New("payload is not valid UTF-8")}
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(payload)
	if err != nil {
		return nil, &DecodeError{ReasonNotJSON, err}
	}
	if v.Type() != fastjson.TypeObject {
		return nil, &DecodeError{ReasonWrongShape, fmt.Errorf("payload is a JSON %s, not an object", jsonType(v))}
	}
	d := decoder{ev: &Event{Source: SourceMQTT, Raw: payload}}
	var hasAction, hasTenant, hasPipeline, hasProject, hasBuildset, hasResult bool
	var enqueueRaw, timestampRaw string
	ev := d.ev
	v.GetObject().Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "timestamp":
			ev.Timestamp, timestampRaw = d.time("timestamp", v)
		case "trigger_time":
			ev.TriggerTime, _ = d.time("trigger_time", v)
		case "enqueue_time":
			ev.EnqueueTime, enqueueRaw = d.time("enqueue_time", v)
		case "action":
			ev.Action, hasAction = d.str("action", v)
		case "tenant":
			ev.Tenant, hasTenant = d.str("tenant", v)
		case "pipeline":
			ev.Pipeline, hasPipeline = d.str("pipeline", v)
		case "project":
			ev.Project, hasProject = d.str("project", v)
		case "zuul_ref":
			ev.ZuulRef, _ = d.str("zuul_ref", v)
		case "queue":
			ev.Queue, _ = d.str("queue", v)
		case "branch":
			ev.Branch, _ = d.str("branch", v)
		case "change_url":
			ev.ChangeURL, _ = d.str("change_url", v)
		case "change":
			ev.Change = d.change("change", v)
		case "patchset":
			ev.Patchset = d.change("patchset", v)
		case "commit_id":
			ev.CommitID, _ = d.str("commit_id", v)
		case "owner":
			ev.Owner, _ = d.str("owner", v)
		case "ref":
			ev.Ref, _ = d.str("ref", v)
		case "message":
			ev.Message, _ = d.str("message", v)
		case "uuid":
			ev.ItemUUID, _ = d.str("uuid", v)
		case "zuul_event_id":
			ev.ZuulEventID, _ = d.str("zuul_event_id", v)
		case "buildset":
			hasBuildset, hasResult = d.buildset(v)
		}
	})
	if d.err != nil {
		return nil, &DecodeError{ReasonWrongShape, d.err}
	}
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{{"action", hasAction && ev.Action != ""}, {"tenant", hasTenant && ev.Tenant != ""}, {"pipeline", hasPipeline && ev.Pipeline != ""},
		{"project", hasProject}, {"buildset", hasBuildset}} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, &DecodeError{ReasonMissingField, fmt.Errorf("not a Zuul report: missing %s", strings.Join(missing, ", "))}
	}
	ev.Outcome = outcome(ev, hasResult)
	ev.BuildsetURL = buildsetURL(ev)
	ev.ID = identity(ev, enqueueRaw, timestampRaw)
	return ev, nil
}

// decoder keeps the first type error with the path of the field.
type decoder struct {
	ev  *Event
	err error
}

func (d *decoder) fail(path string, v *fastjson.Value, want string) {
	if d.err == nil {
		d.err = fmt.Errorf("field %s: JSON %s where Zuul sends %s", path, jsonType(v), want)
	}
}

// str reads a string field; null counts as absent.
func (d *decoder) str(path string, v *fastjson.Value) (string, bool) {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b), true // a copy: the parser's buffer is reused
	case fastjson.TypeNull:
		return "", false
	}
	d.fail(path, v, "a string")
	return "", false
}

// change reads `change` and `patchset`: a string for Gerrit, an integer for GitHub,
// GitLab and Pagure, "" for refs, null in hand-written payloads.
func (d *decoder) change(path string, v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b)
	case fastjson.TypeNull:
		return ""
	case fastjson.TypeNumber:
		raw := v.String()
		if _, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return raw
		}
	}
	d.fail(path, v, "a string or an integer")
	return ""
}

// time reads Zuul's timestamps: epoch seconds as a JSON float (Python's time.time()), or
// null. A numeric string is accepted too: Zuul's docs show quoted values and hand-written
// publishers copy them. raw is the text, for the legacy identity hash.
func (d *decoder) time(path string, v *fastjson.Value) (t time.Time, raw string) {
	switch v.Type() {
	case fastjson.TypeNull:
		return time.Time{}, ""
	case fastjson.TypeNumber:
		raw = v.String()
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		raw = string(b)
	default:
		d.fail(path, v, "a number (epoch seconds)")
		return time.Time{}, ""
	}
	f, err := strconv.ParseFloat(raw, 64)
	// Year 1 to 9999 covers every sane clock; anything else is a corrupt field.
	if err != nil || math.IsNaN(f) || f < -62135596800 || f > 253402300799 {
		if d.err == nil {
			d.err = fmt.Errorf("field %s: %.40q is not a timestamp (epoch seconds)", path, raw)
		}
		return time.Time{}, ""
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), raw
}

// buildset reads buildset{uuid, result, builds}; it reports whether the buildset is there
// and whether it has a result key at all (Zuul >= 3.16).
func (d *decoder) buildset(v *fastjson.Value) (present, hasResult bool) {
	switch v.Type() {
	case fastjson.TypeNull:
		return false, false
	case fastjson.TypeObject:
	default:
		d.fail("buildset", v, "an object")
		return false, false
	}
	ev := d.ev
	v.GetObject().Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "uuid":
			ev.BuildsetUUID, _ = d.str("buildset.uuid", v)
		case "result":
			var ok bool
			ev.Result, ok = d.str("buildset.result", v)
			hasResult = hasResult || ok || v.Type() == fastjson.TypeNull
		case "builds":
			switch v.Type() {
			case fastjson.TypeNull:
			case fastjson.TypeArray:
				items, _ := v.Array()
				if len(items) > 0 {
					ev.Builds = make([]Build, len(items))
				}
				for i, b := range items {
					d.build(&ev.Builds[i], b)
				}
			default:
				d.fail("buildset.builds", v, "an array")
			}
		}
	})
	return true, hasResult
}

func (d *decoder) build(b *Build, v *fastjson.Value) {
	if v.Type() != fastjson.TypeObject {
		d.fail("buildset.builds[]", v, "an object")
		return
	}
	b.Voting = true // Zuul's default: a job votes
	v.GetObject().Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "job_name":
			b.JobName, _ = d.str("buildset.builds.job_name", v)
		case "job_uuid":
			b.JobUUID, _ = d.str("buildset.builds.job_uuid", v)
		case "uuid":
			b.UUID, _ = d.str("buildset.builds.uuid", v)
		case "voting":
			switch v.Type() {
			case fastjson.TypeTrue:
				b.Voting = true
			case fastjson.TypeFalse:
				b.Voting = false
			case fastjson.TypeNull:
			default:
				d.fail("buildset.builds.voting", v, "a boolean")
			}
		case "result":
			b.Result, _ = d.str("buildset.builds.result", v)
		case "log_url":
			b.LogURL, _ = d.str("buildset.builds.log_url", v)
		case "web_url":
			b.WebURL, _ = d.str("buildset.builds.web_url", v)
		case "start_time":
			b.StartTime, _ = d.time("buildset.builds.start_time", v)
		case "end_time":
			b.EndTime, _ = d.time("buildset.builds.end_time", v)
		}
	})
}

func jsonType(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeObject:
		return "object"
	case fastjson.TypeArray:
		return "array"
	case fastjson.TypeString:
		return "string"
	case fastjson.TypeNumber:
		return "number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "boolean"
	}
	return "null"
}

// outcome classifies a report (what `result: [failure]` means in the rules). hasResult is false for
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
func identity(ev *Event, enqueueRaw, timestampRaw string) string {
	if ev.Final() && ev.BuildsetUUID != "" && ev.Result != "" {
		return ev.BuildsetUUID + "-" + ev.Result
	}
	if ev.ItemUUID != "" {
		return ev.ItemUUID + "-" + ev.Action + "-" + ev.BuildsetUUID
	}
	h := sha256.New()
	for _, s := range []string{ev.Tenant, ev.Pipeline, ev.Project, ev.Branch, ev.Ref, ev.Change, ev.Patchset,
		ev.Action, ev.BuildsetUUID, ev.ZuulRef, ev.ZuulEventID, enqueueRaw, timestampRaw} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "h" + hex.EncodeToString(h.Sum(nil)[:16])
}
