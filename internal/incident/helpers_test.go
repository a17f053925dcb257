package incident_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// t0 is the time of the first report in every scenario.
var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// observer counts what the manager reports.
type observer struct {
	mu                        sync.Mutex
	opened, updated, resolved int
	suppressed                map[string]int
}

func (o *observer) IncidentOpened(string)   { o.mu.Lock(); o.opened++; o.mu.Unlock() }
func (o *observer) IncidentUpdated(string)  { o.mu.Lock(); o.updated++; o.mu.Unlock() }
func (o *observer) IncidentResolved(string) { o.mu.Lock(); o.resolved++; o.mu.Unlock() }
func (o *observer) Suppressed(_, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.suppressed == nil {
		o.suppressed = map[string]int{}
	}
	o.suppressed[reason]++
}
func (o *observer) get() (int, int, int, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := map[string]int{}
	for k, v := range o.suppressed {
		s[k] = v
	}
	return o.opened, o.updated, o.resolved, s
}

type env struct {
	t     *testing.T
	fake  *statuspagefake.Fake
	clock *clock
	obs   *observer
	cfg   incident.RouteConfig
	copts statuspage.ClientOptions
	m     *incident.Manager
	sink  *incident.Sink
	// incEvery is the manager's IncidentRefreshInterval (0 = default); only Run uses it.
	incEvery time.Duration
	// natsURL: every manager's key store is a JetStream bucket there; it outlives restarts.
	natsURL string
}

const routeName = "k8s-provider-health"

// newEnv starts a fake status page and a manager whose key store is a JetStream bucket of
// an embedded server.
func newEnv(t *testing.T, fo statuspagefake.Options, tweak func(*incident.RouteConfig)) *env {
	t.Helper()
	return newEnvWith(t, fo, tweak, natstest.Start(t, true).ClientURL())
}

// newStoreEnv is newEnv with the default fake.
func newStoreEnv(t *testing.T, tweak func(*incident.RouteConfig)) *env {
	t.Helper()
	return newEnv(t, statuspagefake.Options{}, tweak)
}

func newEnvWith(t *testing.T, fo statuspagefake.Options, tweak func(*incident.RouteConfig), natsURL string) *env {
	t.Helper()
	e := &env{t: t, fake: statuspagefake.New(t, fo), clock: &clock{t: t0}, obs: &observer{}, natsURL: natsURL}
	e.cfg = incident.DefaultRouteConfig()
	e.cfg.Component = "Zuul"
	if tweak != nil {
		tweak(&e.cfg)
	}
	e.copts = statuspage.ClientOptions{BaseURL: e.fake.URL()}
	if fo.Token != "" {
		tok := fo.Token
		e.copts.Token = func() (string, error) { return tok, nil }
	}
	e.restart()
	return e
}

// restart builds a new manager (a new process) against the same fake and starts it.
func (e *env) restart() {
	e.t.Helper()
	c, err := statuspage.NewClient(e.copts)
	if err != nil {
		e.t.Fatal(err)
	}
	store := keyStoreAt(e.t, e.natsURL)
	e.m = incident.NewManager(incident.ManagerOptions{
		Client: c, Log: zerolog.New(zerolog.NewTestWriter(e.t)), Observer: e.obs, Now: e.clock.Now, BridgeID: "test",
		IncidentRefreshInterval: e.incEvery, KeyStore: store, ReplicaID: "pod-0",
	})
	e.sink, err = e.m.AddRoute(routeName, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.m.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// keyStoreAt opens the incident key bucket on the NATS server at url.
func keyStoreAt(t testing.TB, url string) *kvstore.CAS {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := kvstore.NewCAS(t.Context(), nc, kvstore.CASOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// newKeyStore is a key store on an embedded NATS server of its own.
func newKeyStore(t testing.TB) *kvstore.CAS {
	t.Helper()
	return keyStoreAt(t, natstest.Start(t, true).ClientURL())
}

// send applies ev and fails the test on an error.
func (e *env) send(ev *zuul.Event) {
	e.t.Helper()
	if retry, err := e.sink.Send(context.Background(), ev); err != nil {
		e.t.Fatalf("Send(%s): retry=%v err=%v", ev.ID, retry, err)
	}
}

// calls runs fn and returns the API calls it made, as "METHOD /path".
func (e *env) calls(fn func()) []string {
	e.t.Helper()
	e.fake.ResetRequests()
	fn()
	var out []string
	for _, r := range e.fake.Requests() {
		p := r.Path
		if strings.HasPrefix(p, "/incidents/") {
			p = "/incidents/{id}" + strings.TrimPrefix(strings.TrimPrefix(p, "/incidents/")[36:], "")
		}
		out = append(out, r.Method+" "+p)
	}
	return out
}

func (e *env) incidents() []statuspagefake.Incident { return e.fake.Incidents() }

// ev builds a periodic report of the tested pipeline.
func ev(n int, outcome zuul.Outcome, ts time.Time) *zuul.Event {
	e := &zuul.Event{
		ID:           fmt.Sprintf("item-%d-%s-bs%d", n, outcome, n),
		Timestamp:    ts,
		Tenant:       "scs",
		Pipeline:     "periodic-daily",
		Project:      "SovereignCloudStack/k8s-cluster-api-provider",
		Branch:       "main",
		Outcome:      outcome,
		BuildsetUUID: fmt.Sprintf("bs%d", n),
		BuildsetURL:  fmt.Sprintf("https://zuul.scs.community/t/scs/buildset/bs%d", n),
	}
	if outcome == zuul.OutcomeFailure {
		e.Action, e.Result = "failure", "FAILURE"
		e.Builds = []zuul.Build{
			{JobName: "e2e", Voting: true, Result: "FAILURE", LogURL: fmt.Sprintf("https://logs.scs.community/%d/e2e/", n)},
			{JobName: "lint", Result: "SUCCESS"},
		}
	} else {
		e.Action, e.Result = "success", "SUCCESS"
		e.Builds = []zuul.Build{{JobName: "e2e", Result: "SUCCESS"}}
	}
	return e
}

func fail(n int, ts time.Time) *zuul.Event { return ev(n, zuul.OutcomeFailure, ts) }
func ok(n int, ts time.Time) *zuul.Event   { return ev(n, zuul.OutcomeSuccess, ts) }

func hours(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func eqCalls(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("%s: API calls\n got: %q\nwant: %q", what, got, want)
	}
}

// faultOn returns a fault hook for requests with method and a path ending in suffix.
func faultOn(method, suffix string, ft statuspagefake.Fault) func(*http.Request, []byte) (statuspagefake.Fault, bool) {
	return func(r *http.Request, _ []byte) (statuspagefake.Fault, bool) {
		if r.Method == method && strings.HasSuffix(r.URL.Path, suffix) {
			return ft, true
		}
		return statuspagefake.Fault{}, false
	}
}

// loseAnswerOnce makes the server apply the first matching request and lose its answer.
func loseAnswerOnce(method, suffix string) func(*http.Request, []byte) (statuspagefake.Fault, bool) {
	var hit atomic.Bool
	return func(r *http.Request, _ []byte) (statuspagefake.Fault, bool) {
		if r.Method == method && strings.HasSuffix(r.URL.Path, suffix) && hit.CompareAndSwap(false, true) {
			return statuspagefake.Fault{LoseAnswer: true}, true
		}
		return statuspagefake.Fault{}, false
	}
}

func statuspagefakeOptions() statuspagefake.Options { return statuspagefake.Options{} }
