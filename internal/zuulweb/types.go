package zuulweb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Buildset is one buildset as zuul-web serves it. A list element has no
// Builds and no Events; the detail (Client.Buildset) has them when they are not empty.
// Strings are "" where zuul-web sent null: Result "" means the buildset has no result yet
// (running, or the database row was not updated yet, the MQTT-before-SQL race).
// The fields are plain strings, not pointers: encoding/json leaves a fresh string "" on null.
type Buildset struct {
	ID                  int64           `json:"_id"` // database key: the paging key, ascending by creation
	UUID                string          `json:"uuid"`
	Result              string          `json:"result"`
	Message             string          `json:"message"`
	Pipeline            string          `json:"pipeline"`
	EventID             string          `json:"event_id"`
	EventTimestamp      Time            `json:"event_timestamp"`
	FirstBuildStartTime Time            `json:"first_build_start_time"`
	LastBuildEndTime    Time            `json:"last_build_end_time"`
	Refs                []Ref           `json:"refs"`
	Builds              []Build         `json:"builds,omitempty"`
	Events              []BuildsetEvent `json:"events,omitempty"`

	// raw is the JSON as received and webRoot the client's base URL; both are set by the
	// Client and used by ToEvent (Event.Raw, build and buildset page URLs).
	raw     []byte
	webRoot string
}

// Ref is one ref (change, branch, tag) of a buildset or build.
type Ref struct {
	Project  string `json:"project"`
	Branch   string `json:"branch"`
	Change   int64  `json:"change"` // 0 when null: the database stores 0 and null alike
	Patchset string `json:"patchset"`
	Ref      string `json:"ref"`
	OldRev   string `json:"oldrev"`
	NewRev   string `json:"newrev"`
	RefURL   string `json:"ref_url"`
}

// Build is one build of a buildset detail, including retried attempts (Final false).
type Build struct {
	ID          int64      `json:"_id"`
	UUID        string     `json:"uuid"`
	JobName     string     `json:"job_name"`
	Result      string     `json:"result"` // the raw result code; "" while running
	Held        bool       `json:"held"`
	StartTime   Time       `json:"start_time"`
	EndTime     Time       `json:"end_time"`
	Duration    float64    `json:"duration"`
	Voting      bool       `json:"voting"`
	LogURL      string     `json:"log_url"`
	Nodeset     string     `json:"nodeset"`
	ErrorDetail string     `json:"error_detail"`
	Final       *bool      `json:"final"` // nil while running, false for a retried attempt
	Artifacts   []Artifact `json:"artifacts"`
	Ref         Ref        `json:"ref"`
}

// Artifact is one entry of a build's artifacts.
type Artifact struct {
	Name     string         `json:"name"`
	URL      string         `json:"url"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// BuildsetEvent is an entry of a buildset detail's events (zuul-web 10.2+).
type BuildsetEvent struct {
	EventTime   Time   `json:"event_time"`
	EventType   string `json:"event_type"`
	Description string `json:"description"`
}

// Time is a zuul-web timestamp: "YYYY-MM-DDTHH:MM:SS", naive but UTC,
// truncated to seconds. null decodes to the zero Time. RFC 3339 with a zone is accepted
// too, in case a proxy or a later Zuul adds one.
type Time struct{ time.Time }

const naiveLayout = "2006-01-02T15:04:05"

// UnmarshalJSON reads a naive timestamp as UTC.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("zuulweb: timestamp %s: not a string", b)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.ParseInLocation(naiveLayout, s, time.UTC)
	if err != nil {
		v2, err2 := time.Parse(time.RFC3339Nano, s)
		if err2 != nil {
			return fmt.Errorf("zuulweb: timestamp %q: %w", s, err)
		}
		v = v2.UTC()
	}
	t.Time = v
	return nil
}

// MarshalJSON writes the zuul-web form (naive UTC) or null.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(naiveLayout) + `"`), nil
}
