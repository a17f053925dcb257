package statuspagefake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// client talks to a fake over real HTTP.
type client struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
}

func newClient(t *testing.T, f *Fake) *client {
	return &client{t: t, base: f.URL(), http: &http.Client{Timeout: 10 * time.Second}}
}

// do sends body (a string is sent verbatim, anything else as JSON) with
// Content-Type application/json and returns status and response body.
func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	return c.doType(method, path, "application/json", body)
}

func (c *client) doType(method, path, ctype string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil && ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// must sends and fails the test unless the status is want.
func (c *client) must(want int, method, path string, body any) []byte {
	c.t.Helper()
	st, out := c.do(method, path, body)
	if st != want {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, st, want, out)
	}
	return out
}

// data decodes {"data": ...} into v.
func data(t *testing.T, body []byte, v any) {
	t.Helper()
	var env struct{ Data json.RawMessage }
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("decode %s: %v", env.Data, err)
	}
}

// createIncident posts body and returns the new id.
func (c *client) createIncident(body any) string {
	c.t.Helper()
	var out struct{ ID string }
	if err := json.Unmarshal(c.must(201, "POST", "/incidents", body), &out); err != nil {
		c.t.Fatal(err)
	}
	return out.ID
}

// wireIncident is an incident as a client decodes it.
type wireIncident struct {
	ID          string     `json:"id"`
	DisplayName string     `json:"displayName"`
	BeganAt     *string    `json:"beganAt"`
	EndedAt     *string    `json:"endedAt"`
	Phase       *phaseRef  `json:"phase"`
	Affects     []impactIn `json:"affects"`
	Updates     []int      `json:"updates"`
}

type impactIn struct {
	Reference string `json:"reference"`
	Type      string `json:"type"`
	Severity  *int   `json:"severity,omitempty"`
}

// expectViolations asserts the fake recorded a spec violation and forgets
// it, so the deliberate one does not fail the test at cleanup.
func expectViolations(t *testing.T, f *Fake) {
	t.Helper()
	if len(f.Violations()) == 0 {
		t.Error("expected a spec violation to be recorded")
	}
	f.ResetViolations()
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func intp(v int) *int { return &v }

// openIncident is a valid incident body on component "Zuul".
func openIncident(f *Fake, began string, severity int) map[string]any {
	return map[string]any{
		"displayName": "periodic failing",
		"beganAt":     began,
		"phase":       map[string]int{"generation": 1, "order": 1},
		"affects": []map[string]any{{
			"reference": f.ComponentID("Zuul"),
			"type":      f.ImpactTypeID("Connectivity Problems"),
			"severity":  severity,
		}},
	}
}

// decode unmarshals a JSON answer into v, failing the test if it is not JSON of that shape.
func decode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("answer %s: %v", data, err)
	}
}
