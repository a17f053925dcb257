// Package statuspagefake is an in-process fake of the SCS status page API
// (SovereignCloudStack/status-page-api v1.0.0 and v1.0.1) for tests, the load harness
// and the demo.
//
// It keeps state the way the real server does on PostgreSQL, including the
// server's known bugs (500s for client
// mistakes, incidents without phase that break reads, append-only impacts in
// v1.0.0, colliding update numbers, the SQL time window of GET /incidents).
// Every request and response is validated against the embedded openapi.yaml;
// a test using the fake fails at cleanup when the client sent something the
// spec forbids.
package statuspagefake

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Version selects which status-page-api release the fake behaves like.
type Version string

const (
	// V100 is status-page-api v1.0.0, what the SCS deployment runs.
	V100 Version = "v1.0.0"
	// V101 is v1.0.1 with the database workaround (phases.name made
	// nullable after each server start): phases behave
	// like v1.0.0 but unknown phases are rejected and affects replace.
	V101 Version = "v1.0.1"
	// V101Broken is v1.0.1 without the workaround: every create or PATCH of
	// an incident that contains a phase answers 500.
	V101Broken Version = "v1.0.1-broken"
)

// Options configures a Fake. The zero value is a provisioned v1.0.0 server
// without authentication rendering times in UTC.
type Options struct {
	Version Version // default V100
	// Token, if set, makes POST/PATCH/DELETE require "Authorization: Bearer
	// <Token>" ("bearer" case-insensitive) like the Oathkeeper proxy upstream.
	Token string
	// Oathkeeper, if set, puts the fake behind the SCS auth proxy (proxy.go): tokens are
	// JWTs of an issuer, GETs must be anonymous, unmatched URLs are 404. Token is then
	// ignored.
	Oathkeeper *Oathkeeper
	// Location is the time zone the server renders times in; default UTC.
	Location *time.Location
	// NoProvision starts with empty tables instead of provisioning like
	// provisioning.scs-public.yaml.
	NoProvision bool
	// Answered, if set, is called with every request once it is answered (the demo prints
	// the writes with it).
	Answered func(Request)
}

// Fake is a running fake server. All methods are goroutine-safe.
type Fake struct {
	opts Options
	srv  *httptest.Server
	spec *specValidator

	proxy *proxy // the Oathkeeper mode; nil = none (or the Token check)

	// closing is closed by Close so hanging fault handlers return and the
	// httptest server can shut down.
	closing   chan struct{}
	closeOnce sync.Once

	// mu guards the server state (the "database").
	mu    sync.Mutex
	state *state

	// metaMu guards what the fake observes about its clients.
	metaMu     sync.Mutex
	requests   []*Request
	violations []string
	faultFn    func(r *http.Request, body []byte) (Fault, bool)
	failNext   int
	failFault  Fault
	collide    int
}

// New starts a fake server. t.Cleanup closes it and reports every spec
// violation seen through t.Errorf.
func New(t testing.TB, opts Options) *Fake {
	t.Helper()
	if opts.Version == "" {
		opts.Version = V100
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	spec, err := newSpecValidator()
	if err != nil {
		t.Fatalf("statuspagefake: loading the spec: %v", err)
	}
	st := newState()
	if !opts.NoProvision {
		if err := st.provision(provisioningYAML); err != nil {
			t.Fatalf("statuspagefake: provisioning: %v", err)
		}
	}
	f := &Fake{opts: opts, spec: spec, state: st, closing: make(chan struct{})}
	if opts.Oathkeeper != nil {
		f.proxy = newProxy(opts.Oathkeeper)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	t.Cleanup(func() {
		f.Close()
		for _, v := range f.Violations() {
			t.Errorf("statuspagefake: spec violation: %s", v)
		}
	})
	return f
}

// URL is the base URL of the API (no version prefix, no trailing slash).
func (f *Fake) URL() string { return f.srv.URL }

// Close stops the server; hanging requests are released. Safe to call twice.
func (f *Fake) Close() {
	f.closeOnce.Do(func() {
		close(f.closing)
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
}

// Violations returns every request or response seen so far that does not
// match openapi.yaml.
func (f *Fake) Violations() []string {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	return append([]string(nil), f.violations...)
}

// ResetViolations forgets the violations seen so far, for tests that provoke
// one on purpose and must not fail at cleanup.
func (f *Fake) ResetViolations() {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	f.violations = nil
}

func (f *Fake) addViolation(v string) {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	f.violations = append(f.violations, v)
}

// Request is one request the fake served.
type Request struct {
	Method, Path, RawQuery string
	Body                   []byte
	// Status is the answered status; 0 if the fake hung or closed the
	// connection (or is still handling the request).
	Status int
	// Authorized is true when the request carried the right bearer token or
	// no Token is configured (with Oathkeeper: a valid JWT).
	Authorized bool
	// Bearer is true when the request carried an Authorization header at all.
	Bearer bool
}

// Requests returns every request served, in arrival order.
func (f *Fake) Requests() []Request {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	out := make([]Request, len(f.requests))
	for i, r := range f.requests {
		out[i] = *r
		out[i].Body = append([]byte(nil), r.Body...)
	}
	return out
}

// ResetRequests forgets the requests recorded so far.
func (f *Fake) ResetRequests() {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	f.requests = nil
}

// recordRequest appends r and returns a function that sets its status once
// the answer is known. Requests are kept by pointer so ResetRequests in
// between only detaches the record.
func (f *Fake) recordRequest(r Request) func(status int) {
	rec := &r
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	f.requests = append(f.requests, rec)
	return func(status int) {
		f.metaMu.Lock()
		rec.Status = status
		answered := *rec
		f.metaMu.Unlock()
		if f.opts.Answered != nil {
			f.opts.Answered(answered)
		}
	}
}

// CollideNextUpdate makes the next POST /incidents/{id}/updates that would
// insert a row answer 500, as the primary-key violation of two concurrent
// posts does on the real server.
func (f *Fake) CollideNextUpdate() {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	f.collide++
}

func (f *Fake) takeCollision() bool {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	if f.collide > 0 {
		f.collide--
		return true
	}
	return false
}
