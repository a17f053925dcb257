package natspub

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// marshalBody is json.Marshal(b), byte for byte, without reflection: the body is built
// for every report on every route, and encoding/json's reflection walk was the largest
// part of that. A body with raw (include_raw), whose compaction encoding/json also does,
// and a timestamp JSON cannot hold go through encoding/json.
func marshalBody(b *Body) ([]byte, error) {
	if len(b.Raw) > 0 || (b.Timestamp != nil && (b.Timestamp.Year() < 0 || b.Timestamp.Year() > 9999)) {
		return json.Marshal(b)
	}
	// Sized for the whole body, so that it is allocated once: keys and punctuation, the
	// values, and an eighth more for escapes.
	n := 320 + len(b.Schema) + len(b.ID) + len(b.Route) + len(b.Source) + len(b.Summary) +
		len(b.Tenant) + len(b.Pipeline) + len(b.Project) + len(b.Branch) + len(b.Ref) +
		len(b.Change) + len(b.Patchset) + len(b.ChangeURL) + len(b.Action) + len(b.Result) +
		len(b.Outcome) + len(b.ItemUUID) + len(b.BuildsetUUID) + len(b.BuildsetURL) + len(b.Message)
	for _, j := range b.FailedJobs {
		n += 64 + len(j.Name) + len(j.Result) + len(j.LogURL) + len(j.BuildURL)
	}
	d := make([]byte, 0, n+n/8)
	d = append(d, `{"schema":`...)
	d = appendString(d, b.Schema)
	d = appendField(d, "id", b.ID)
	d = appendField(d, "route", b.Route)
	d = appendField(d, "source", b.Source)
	d = append(d, `,"recovered":`...)
	d = strconv.AppendBool(d, b.Recovered)
	d = appendField(d, "summary", b.Summary)
	d = appendField(d, "tenant", b.Tenant)
	d = appendField(d, "pipeline", b.Pipeline)
	d = appendField(d, "project", b.Project)
	d = appendField(d, "branch", b.Branch)
	d = appendField(d, "ref", b.Ref)
	d = appendField(d, "change", b.Change)
	d = appendField(d, "patchset", b.Patchset)
	d = appendField(d, "change_url", b.ChangeURL)
	d = appendField(d, "action", b.Action)
	d = appendField(d, "result", b.Result)
	d = appendField(d, "outcome", b.Outcome)
	d = appendField(d, "item_uuid", b.ItemUUID)
	d = appendField(d, "buildset_uuid", b.BuildsetUUID)
	d = appendField(d, "buildset_url", b.BuildsetURL)
	d = append(d, `,"timestamp":`...)
	if b.Timestamp == nil {
		d = append(d, "null"...)
	} else { // what time.Time's MarshalJSON writes
		d = append(d, '"')
		d = b.Timestamp.AppendFormat(d, time.RFC3339Nano)
		d = append(d, '"')
	}
	d = appendField(d, "message", b.Message)
	d = append(d, `,"failed_jobs":`...)
	if b.FailedJobs == nil {
		d = append(d, "null"...)
	} else {
		d = append(d, '[')
		for i, j := range b.FailedJobs {
			if i > 0 {
				d = append(d, ',')
			}
			d = append(d, `{"name":`...)
			d = appendString(d, j.Name)
			d = append(d, `,"voting":`...)
			d = strconv.AppendBool(d, j.Voting)
			d = appendField(d, "result", j.Result)
			d = appendField(d, "log_url", j.LogURL)
			d = appendField(d, "build_url", j.BuildURL)
			d = append(d, '}')
		}
		d = append(d, ']')
	}
	return append(d, '}'), nil
}

// appendField appends ,"key":"value"; key needs no escaping.
func appendField(d []byte, key, value string) []byte {
	d = append(d, ',', '"')
	d = append(d, key...)
	d = append(d, '"', ':')
	return appendString(d, value)
}

const hexDigits = "0123456789abcdef"

// safeASCII marks the ASCII bytes a JSON string holds as they are: one lookup per byte on
// the common path instead of six comparisons.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string the way encoding/json does with its default
// HTML escaping: <, > and & as \u003c, \u003e, \u0026, control characters escaped,
// invalid UTF-8 as \ufffd, and U+2028 and U+2029 escaped.
func appendString(d []byte, s string) []byte {
	d = append(d, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			d = append(d, s[start:i]...)
			switch c {
			case '\\', '"':
				d = append(d, '\\', c)
			case '\b':
				d = append(d, '\\', 'b')
			case '\f':
				d = append(d, '\\', 'f')
			case '\n':
				d = append(d, '\\', 'n')
			case '\r':
				d = append(d, '\\', 'r')
			case '\t':
				d = append(d, '\\', 't')
			default:
				d = append(d, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			d = append(d, s[start:i]...)
			d = append(d, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			d = append(d, s[start:i]...)
			d = append(d, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	d = append(d, s[start:]...)
	return append(d, '"')
}
