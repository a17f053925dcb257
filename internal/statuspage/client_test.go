package statuspage_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

func TestRetryableClassification(t *testing.T) {
	for _, tc := range []struct {
		err  *statuspage.APIError
		want bool
	}{
		{&statuspage.APIError{Status: 400, Method: "POST", Path: "/incidents"}, false},
		{&statuspage.APIError{Status: 401, Method: "POST", Path: "/incidents"}, true},
		{&statuspage.APIError{Status: 403, Method: "PATCH", Path: "/incidents/x"}, true},
		{&statuspage.APIError{Status: 401, Method: "GET", Path: "/components"}, false},
		{&statuspage.APIError{Status: 404, Method: "PATCH", Path: "/incidents/x"}, false},
		{&statuspage.APIError{Status: 500, Method: "POST", Path: "/incidents"}, false},
		{&statuspage.APIError{Status: 500, Method: "PATCH", Path: "/incidents/x"}, false},
		{&statuspage.APIError{Status: 500, Method: "POST", Path: "/incidents/x/updates"}, true},
		{&statuspage.APIError{Status: 429, Method: "GET", Path: "/components"}, true},
		{&statuspage.APIError{Status: 502, Method: "GET", Path: "/components"}, true},
		{&statuspage.APIError{Status: 503, Method: "PATCH", Path: "/incidents/x"}, true},
		{&statuspage.APIError{Status: 504, Method: "POST", Path: "/incidents"}, true},
	} {
		eq(t, tc.err.Error(), statuspage.Retryable(tc.err), tc.want)
	}
	eq(t, "nil", statuspage.Retryable(nil), false)
	eq(t, "canceled", statuspage.Retryable(context.Canceled), true)
}

// Nothing the server answers may panic the client: every shape of body on every call
// becomes an error or an empty value.
func TestClientSurvivesGarbage(t *testing.T) {
	bodies := []string{"", "null", "{", `{"data": 5}`, `{"data": {"id": 5}}`, `{"data": [null, {"beganAt": "yesterday"}]}`,
		`{"data": [{"affects": [{"severity": "high"}]}]}`, `[]`, `{"id": null, "order": "x"}`, strings.Repeat("x", 1<<16)}
	for _, status := range []int{200, 201, 204, 500} {
		for _, body := range bodies {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
			}))
			c, err := statuspage.NewClient(statuspage.ClientOptions{BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			_, _ = c.ListComponents(ctx, time.Now())
			_, _ = c.ListImpactTypes(ctx)
			_, _ = c.ListSeverities(ctx)
			_, _ = c.GetPhases(ctx)
			_, _ = c.ListIncidents(ctx, time.Now(), time.Now())
			_, _ = c.GetIncident(ctx, "x")
			_, _ = c.ListUpdates(ctx, "x")
			if _, err := c.CreateIncident(ctx, statuspage.NewIncident{}); err == nil && status != 201 && status != 200 {
				t.Errorf("CreateIncident with %d %q: no error", status, body)
			}
			_, _ = c.PostUpdate(ctx, "x", statuspage.IncidentUpdate{})
			_ = c.EndIncident(ctx, "x", statuspage.EndIncident{})
			srv.Close()
		}
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}
