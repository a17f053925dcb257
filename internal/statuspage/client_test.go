package statuspage_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
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

// A Manager facing a server that answers garbage reports errors and never panics.
func TestManagerSurvivesGarbage(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.fake.SetFault(func(r *http.Request, _ []byte) (statuspagefake.Fault, bool) {
		return statuspagefake.Fault{Status: 200, Message: "not what you expected"}, r.Method == "GET"
	})
	// GET /components answers {"message": ...} with 200: no components, so no maintenance;
	// the create itself goes through.
	e.send(fail(1, hours(0)))
	// The hand-end check reads an incident without id or endedAt: treated as open.
	e.send(fail(2, hours(1)))
	e.fake.SetFault(nil)
	e.send(ok(3, hours(2)))
	eq(t, "ended", e.incidents()[0].EndedAt != nil, true)
}

// An update whose answer was lost although the server stored it: the retry looks first
// and posts nothing new.
func TestUpdateAnswerLost(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.copts.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
	e.restart()
	e.send(fail(1, hours(0)))
	e.fake.SetFault(loseAnswerOnce("POST", "/updates"))
	if retry, err := e.sink.Send(t.Context(), fail(2, hours(1))); !retry || err == nil {
		t.Fatalf("lost answer: retry=%v err=%v", retry, err)
	}
	e.fake.SetFault(nil)
	eqCalls(t, "the retry looks first and finds its update", e.calls(func() { e.send(fail(2, hours(1))) }),
		"GET /incidents/{id}/updates")
	eq(t, "updates", len(e.incidents()[0].Updates), 1)
}

// An incident deleted by a person counts as ended by hand.
func TestDeletedIncident(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.send(fail(1, hours(0)))
	id := e.incidents()[0].ID
	req, _ := http.NewRequest(http.MethodDelete, e.fake.URL()+"/incidents/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eq(t, "deleted", len(e.incidents()), 0)
	e.send(fail(2, hours(1)))
	eq(t, "not reopened", len(e.incidents()), 0)
	e.send(ok(3, hours(2)))
	e.send(fail(4, hours(3)))
	eq(t, "new outage", len(e.incidents()), 1)
}

func TestRunStopsOnCancel(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, func(c *statuspage.RouteConfig) { c.QuietPeriod = time.Hour })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
