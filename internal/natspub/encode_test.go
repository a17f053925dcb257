package natspub

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// tricky are strings encoding/json escapes: quotes, backslashes, control characters, HTML
// characters, invalid UTF-8, the JavaScript line separators, and multi-byte runes.
var tricky = []string{
	"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr\bbs\fff\x00nul\x1fus\x7fdel",
	"<script>&amp;</script>", "bad \xff utf8 \xc3", "sep \u2028 and \u2029", "ümlaut 日本 🚀",
}

func assertSameAsEncodingJSON(t *testing.T, b *Body) {
	t.Helper()
	want, werr := json.Marshal(b)
	got, gerr := marshalBody(b)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("error %v, encoding/json: %v", gerr, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("body differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

// The hand-written encoder writes exactly what encoding/json writes, for every sample
// report and for strings that need escaping in every string field.
func TestMarshalBodyIsEncodingJSON(t *testing.T) {
	for _, s := range samples.All() {
		ev, err := zuul.Decode(s.Payload)
		if err != nil {
			continue // the samples include payloads the decoder rejects
		}
		for _, raw := range []bool{false, true} {
			assertSameAsEncodingJSON(t, NewBody(ev, "route", raw))
		}
	}
	ts := time.Date(2026, 11, 29, 15, 4, 5, 120000000, time.FixedZone("x", 3600))
	for _, s := range tricky {
		b := &Body{Schema: s, ID: s, Route: s, Source: s, Summary: s, Tenant: s, Pipeline: s, Project: s,
			Branch: s, Ref: s, Change: s, Patchset: s, ChangeURL: s, Action: s, Result: s, Outcome: s,
			ItemUUID: s, BuildsetUUID: s, BuildsetURL: s, Message: s, Timestamp: &ts,
			FailedJobs: []FailedJob{{Name: s, Voting: true, Result: s, LogURL: s, BuildURL: s}, {}}}
		assertSameAsEncodingJSON(t, b)
	}
	assertSameAsEncodingJSON(t, &Body{})                          // no timestamp, nil jobs
	assertSameAsEncodingJSON(t, &Body{FailedJobs: []FailedJob{}}) // empty jobs
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	assertSameAsEncodingJSON(t, &Body{Timestamp: &far}) // both refuse the year
}

func FuzzMarshalBody(f *testing.F) {
	for _, s := range tricky {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		assertSameAsEncodingJSON(t, &Body{Summary: a, Message: b, FailedJobs: []FailedJob{{Name: b, LogURL: a}}})
	})
}
