package statuspagefake

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Request bodies as oapi-codegen generates them for the real server:
// optional fields are pointers, so "absent" and null are the same.

type incidentBody struct {
	DisplayName *string       `json:"displayName"`
	Description *string       `json:"description"`
	BeganAt     *time.Time    `json:"beganAt"`
	EndedAt     *time.Time    `json:"endedAt"`
	Phase       *phaseRef     `json:"phase"`
	Affects     *[]impactBody `json:"affects"`
	Updates     *[]int        `json:"updates"` // read-only, ignored
}

func (b incidentBody) empty() bool {
	return b.DisplayName == nil && b.Description == nil && b.BeganAt == nil && b.EndedAt == nil &&
		b.Phase == nil && b.Affects == nil && b.Updates == nil
}

// hasColumn reports whether the body sets a column of the incidents table;
// v1.0.0 derives its 404 from the rows an UPDATE of those columns affected.
func (b incidentBody) hasColumn() bool {
	return b.DisplayName != nil || b.Description != nil || b.BeganAt != nil || b.EndedAt != nil || b.Phase != nil
}

type phaseRef struct {
	Generation int `json:"generation"`
	Order      int `json:"order"`
}

type impactBody struct {
	Reference *uuidValue `json:"reference"`
	Type      *uuidValue `json:"type"`
	Severity  *int       `json:"severity"`
}

type updateBody struct {
	DisplayName *string    `json:"displayName"`
	Description *string    `json:"description"`
	CreatedAt   *time.Time `json:"createdAt"`
}

func (b updateBody) empty() bool {
	return b.DisplayName == nil && b.Description == nil && b.CreatedAt == nil
}

type componentBody struct {
	DisplayName *string            `json:"displayName"`
	Labels      *map[string]string `json:"labels"`
}

type impactTypeBody struct {
	DisplayName *string `json:"displayName"`
	Description *string `json:"description"`
}

type severityBody struct {
	DisplayName *string `json:"displayName"`
	Value       *int    `json:"value"`
}

type phaseListBody struct {
	Phases []string `json:"phases"`
}

// uuidValue is a UUID in a JSON body; like openapi_types.UUID a malformed
// value is a bind error (500 on the real server).
type uuidValue string

func (u *uuidValue) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	id, err := parseUUID(s)
	if err != nil {
		return err
	}
	*u = uuidValue(id)
	return nil
}

// errBind is a body that could not be bound; the server maps it to 500.
var errBind = errors.New("bind")

// bindBody binds a request body like echo's DefaultBinder: no body binds
// nothing, JSON is decoded, form types bind nothing (no form tags), any
// other Content-Type is "unsupported media type".
func bindBody(r *http.Request, body []byte, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case strings.HasPrefix(ctype, "application/json"):
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
			return fmt.Errorf("%w: %v", errBind, err)
		}
		return nil
	case ctype == "application/x-www-form-urlencoded", ctype == "multipart/form-data":
		return nil
	default:
		return fmt.Errorf("%w: Unsupported Media Type", errBind)
	}
}

// parseUUID accepts the forms github.com/google/uuid does and returns the
// canonical lower-case form; errors read like uuid.Parse's.
func parseUUID(s string) (string, error) {
	in := s
	switch len(s) {
	case 36:
	case 36 + 9:
		if !strings.EqualFold(s[:9], "urn:uuid:") {
			return "", fmt.Errorf("invalid urn prefix: %q", s[:9])
		}
		s = s[9:]
	case 36 + 2:
		if s[0] != '{' || s[37] != '}' {
			return "", errors.New("invalid UUID format")
		}
		s = s[1:37]
	case 32:
		if _, err := hex.DecodeString(s); err != nil {
			return "", errors.New("invalid UUID format")
		}
		s = s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
	default:
		return "", fmt.Errorf("invalid UUID length: %d", len(in))
	}
	if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", errors.New("invalid UUID format")
	}
	if _, err := hex.DecodeString(strings.ReplaceAll(s, "-", "")); err != nil {
		return "", errors.New("invalid UUID format")
	}
	return strings.ToLower(s), nil
}

// parseQueryTime binds a time query parameter like oapi-codegen's runtime:
// RFC3339 or a plain date.
func parseQueryTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, v)
}

// Response bodies.

type incidentOut struct {
	ID          string      `json:"id"`
	DisplayName *string     `json:"displayName,omitempty"`
	Description *string     `json:"description,omitempty"`
	BeganAt     *string     `json:"beganAt"`
	EndedAt     *string     `json:"endedAt"`
	Phase       *phaseRef   `json:"phase,omitempty"`
	Affects     []impactOut `json:"affects"`
	Updates     []int       `json:"updates"`
}

type impactOut struct {
	Reference string `json:"reference"`
	Type      string `json:"type"`
	Severity  *int   `json:"severity,omitempty"`
}

type updateOut struct {
	Order       int     `json:"order"`
	DisplayName *string `json:"displayName,omitempty"`
	Description *string `json:"description,omitempty"`
	CreatedAt   *string `json:"createdAt"`
}

type componentOut struct {
	ID                 string            `json:"id"`
	DisplayName        *string           `json:"displayName,omitempty"`
	Labels             map[string]string `json:"labels"`
	ActivelyAffectedBy []impactOut       `json:"activelyAffectedBy"`
}

type impactTypeOut struct {
	ID          string  `json:"id"`
	DisplayName string  `json:"displayName"`
	Description *string `json:"description,omitempty"`
}

type severityOut struct {
	DisplayName string `json:"displayName"`
	Value       int    `json:"value"`
}

type phaseListOut struct {
	Generation int      `json:"generation"`
	Phases     []string `json:"phases"`
}

// reply is a finished answer; the fake validates it before writing it.
type reply struct {
	status int
	body   []byte // nil: no body
}

func jsonReply(status int, v any) reply {
	b, err := json.Marshal(v)
	if err != nil {
		return messageReply(http.StatusInternalServerError, err.Error())
	}
	return reply{status: status, body: append(b, '\n')}
}

func dataReply(v any) reply { return jsonReply(http.StatusOK, map[string]any{"data": v}) }

// messageReply is echo's error body.
func messageReply(status int, msg string) reply {
	if msg == "" {
		msg = http.StatusText(status)
	}
	return jsonReply(status, map[string]string{"message": msg})
}

func noContent() reply { return reply{status: http.StatusNoContent} }

func badRequest() reply { return messageReply(http.StatusBadRequest, "") }
func notFound() reply   { return messageReply(http.StatusNotFound, "") }

// internalError is what the real server answers for DB errors and panics.
func internalError(why string) reply {
	return messageReply(http.StatusInternalServerError, why)
}

// renderTime renders a stored time in the server's zone with microseconds.
func (f *Fake) renderTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := dbTime(*t).In(f.opts.Location).Format(time.RFC3339Nano)
	return &s
}
