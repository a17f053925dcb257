package incident_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// Every error class on the write that opens an incident: permanent ones are reported as
// such and leave nothing behind; temporary ones say retry, and the same report sent again
// after the fault cleared makes exactly one incident.
func TestErrorClassesOnCreate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  statuspagefake.Fault
		retry  bool
		status int
	}{
		{"400 permanent", statuspagefake.Fault{Status: 400, Message: "Bad Request"}, false, 400},
		{"404 permanent", statuspagefake.Fault{Status: 404, Message: "Requested url does not match any rules"}, false, 404},
		{"500 on create permanent", statuspagefake.Fault{Status: 500, Message: "ERROR: insert or update on table impacts violates foreign key constraint"}, false, 500},
		{"429 retryable", statuspagefake.Fault{Status: 429}, true, 429},
		{"502 retryable", statuspagefake.Fault{Status: 502}, true, 502},
		{"503 retryable", statuspagefake.Fault{Status: 503, Message: "upstream unavailable"}, true, 503},
		{"504 retryable", statuspagefake.Fault{Status: 504}, true, 504},
		{"timeout retryable", statuspagefake.Fault{Hang: true}, true, 0},
		{"closed connection retryable", statuspagefake.Fault{CloseConn: true}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, statuspagefake.Options{}, nil)
			e.copts.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
			e.restart()
			e.fake.SetFault(faultOn("POST", "/incidents", tc.fault))
			retry, err := e.sink.Send(t.Context(), fail(1, hours(0)))
			if err == nil {
				t.Fatal("Send succeeded despite the fault")
			}
			eq(t, "retry", retry, tc.retry)
			eq(t, "Retryable(err)", statuspage.Retryable(err), tc.retry)
			var ae *statuspage.APIError
			if tc.status != 0 {
				if !errors.As(err, &ae) {
					t.Fatalf("not an APIError: %v", err)
				}
				eq(t, "status", ae.Status, tc.status)
				if tc.fault.Message != "" {
					eq(t, "message kept", ae.Message, tc.fault.Message)
				}
				eq(t, "path", ae.Path, "/incidents")
			}
			eq(t, "incidents while failing", len(e.incidents()), 0)

			e.fake.SetFault(nil)
			retry, err = e.sink.Send(t.Context(), fail(1, hours(0)))
			if err != nil {
				t.Fatalf("Send after the fault cleared: retry=%v err=%v", retry, err)
			}
			eq(t, "incidents", len(e.incidents()), 1)
			e.send(fail(1, hours(0)))
			eq(t, "incidents after a redelivery", len(e.incidents()), 1)
		})
	}
}

// A create whose answer is lost although the server stored the incident: the retry
// finds the incident by the title and beganAt it sent instead of creating a second one.
func TestCreateAnswerLost(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.copts.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
	e.restart()
	e.fake.SetFault(loseAnswerOnce("POST", "/incidents"))
	retry, err := e.sink.Send(t.Context(), fail(1, hours(0)))
	if !retry || err == nil {
		t.Fatalf("lost answer: retry=%v err=%v", retry, err)
	}
	eqCalls(t, "retry looks first", e.calls(func() { e.send(fail(1, hours(0))) }), "GET /incidents")
	eq(t, "incidents", len(e.incidents()), 1)
	e.send(fail(2, hours(24)))
	eq(t, "the found incident is updated", len(e.incidents()[0].Updates), 1)
}

// The update-numbering collision (500 on POST .../updates) is retried; the retry posts
// the update once.
func TestUpdateCollisionRetried(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.send(fail(1, hours(0)))
	e.fake.CollideNextUpdate()
	retry, err := e.sink.Send(t.Context(), fail(2, hours(24)))
	if !retry || err == nil {
		t.Fatalf("collision: retry=%v err=%v", retry, err)
	}
	e.send(fail(2, hours(24)))
	e.send(fail(2, hours(24)))
	eq(t, "updates", len(e.incidents()[0].Updates), 1)
}

// A closing update posted, then the PATCH failed: the retry only PATCHes.
func TestResolveRetryDoesNotRepeatClosingUpdate(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	e.send(fail(1, hours(0)))
	e.fake.SetFault(faultOn("PATCH", "", statuspagefake.Fault{Status: 503}))
	if retry, err := e.sink.Send(t.Context(), ok(2, hours(24))); !retry || err == nil {
		t.Fatalf("PATCH 503: retry=%v err=%v", retry, err)
	}
	e.fake.SetFault(nil)
	eqCalls(t, "retry", e.calls(func() { e.send(ok(2, hours(24))) }), "GET /incidents/{id}", "PATCH /incidents/{id}")
	inc := e.incidents()[0]
	eq(t, "ended", inc.EndedAt != nil, true)
	eq(t, "one closing update", len(inc.Updates), 1)
}

// v1.0.1 without the DB workaround answers 500 to every incident write with a phase; the
// bridge never sends an incident without phase, so this is a permanent error.
func TestV101BrokenIsPermanent(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{Version: statuspagefake.V101Broken}, nil)
	retry, err := e.sink.Send(t.Context(), fail(1, hours(0)))
	if retry || err == nil {
		t.Fatalf("retry=%v err=%v, want a permanent error", retry, err)
	}
	eq(t, "incidents", len(e.incidents()), 0)
}

func TestStartUnreachable(t *testing.T) {
	f := statuspagefake.New(t, statuspagefake.Options{})
	url := f.URL()
	f.Close()
	c, _ := statuspage.NewClient(statuspage.ClientOptions{BaseURL: url})
	m := incident.NewManager(incident.ManagerOptions{Client: c})
	cfg := incident.DefaultRouteConfig()
	cfg.Component = "Zuul"
	s, _ := m.AddRoute("r", cfg)
	if err := m.Start(t.Context()); err == nil || !statuspage.Retryable(err) {
		t.Fatalf("Start against a closed server: %v", err)
	}
	// Reports before a successful Start wait.
	if retry, err := s.Send(t.Context(), fail(1, hours(0))); !retry || err == nil {
		t.Fatalf("Send before Start: retry=%v err=%v", retry, err)
	}
}

// The token goes out as a Bearer header on writes only (reads are anonymous), and never
// into an error string.
func TestTokenSentAndNeverInErrors(t *testing.T) {
	const secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig"
	e := newEnv(t, statuspagefake.Options{Token: secret}, nil)
	e.send(fail(1, hours(0)))
	for _, r := range e.fake.Requests() {
		if write := r.Method != "GET"; write != r.Authorized {
			t.Errorf("%s %s: carries the token = %v", r.Method, r.Path, r.Authorized)
		}
	}
	eq(t, "incidents", len(e.incidents()), 1)

	// A proxy that echoes the credentials in its message.
	e.fake.SetFault(faultOn("POST", "/updates", statuspagefake.Fault{Status: 401, Message: "token " + secret + " expired"}))
	retry, err := e.sink.Send(t.Context(), fail(2, hours(1)))
	if err == nil || !retry || !errors.Is(err, statuspage.ErrUnauthorized) {
		t.Fatalf("401: retry=%v err=%v", retry, err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("error contains the token: %v", err)
	}
	e.fake.SetFault(nil)

	// A wrong token is a 401 to retry with a fresh token, whose error names no token.
	e.copts.Token = func() (string, error) { return "wrong-" + secret, nil }
	e.restart()
	retry, err = e.sink.Send(t.Context(), fail(3, hours(2)))
	if err == nil || !retry || strings.Contains(err.Error(), secret) {
		t.Fatalf("wrong token: retry=%v err=%v", retry, err)
	}
	eq(t, "status", statusOf(err), 401)

	// The token function is called per request: a rotated token is used at once.
	e.copts.Token = func() (string, error) { return secret, nil }
	e.restart()
	e.send(fail(3, hours(2)))
}

func TestClientRejectsBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "status.example.org", "ftp://x", "https://user:pw@x"} {
		if _, err := statuspage.NewClient(statuspage.ClientOptions{BaseURL: u}); err == nil {
			t.Errorf("NewClient(%q) succeeded", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// Concurrent deliveries of different reports of one key: one incident, every update
// posted once, no numbering collision (the key is serialised).
func TestConcurrentSameKey(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		for range 2 { // every report twice, as a redelivery racing the original
			wg.Go(func() {
				if _, err := e.sink.Send(context.Background(), fail(i, hours(i))); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	incs := e.incidents()
	eq(t, "incidents", len(incs), 1)
	eq(t, "updates", len(incs[0].Updates), n-1)
}

func statusOf(err error) int {
	var ae *statuspage.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}
