package incident_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// authLog records what the client reports about authentication.
type authLog struct {
	mu      sync.Mutex
	events  []string
	reasons []string
}

func (a *authLog) AuthAccepted() { a.mu.Lock(); a.events = append(a.events, "accepted"); a.mu.Unlock() }
func (a *authLog) AuthRefused(_ bool, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, "refused")
	a.reasons = append(a.reasons, reason)
}
func (a *authLog) get() ([]string, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.events...), append([]string(nil), a.reasons...)
}

// behindOathkeeper is an env whose fake answers like the SCS deployment's proxy, with a
// fake issuer of 1-hour id_tokens.
func behindOathkeeper(t *testing.T) (*env, *oidcfake.Issuer) {
	t.Helper()
	is := oidcfake.New(t, oidcfake.Options{IDTokenTTL: time.Hour})
	e := newEnv(t, statuspagefake.Options{Oathkeeper: &statuspagefake.Oathkeeper{Issuer: is.URL(), JWKSURL: is.JWKSURL()}}, nil)
	return e, is
}

// Behind the proxy: an expired token in the file does not stop Start (reads are
// anonymous), a write is refused retryably with ErrUnauthorized, and the write goes
// through as soon as the file holds a valid token.
func TestExpiredTokenFileThenRotated(t *testing.T) {
	e, is := behindOathkeeper(t)
	file := filepath.Join(t.TempDir(), "token")
	expired := is.IDToken(-time.Minute)
	if err := os.WriteFile(file, []byte(expired+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	obs := &authLog{}
	e.copts.Token = func() (string, error) {
		b, err := os.ReadFile(file)
		return strings.TrimSpace(string(b)), err
	}
	e.copts.AuthObserver = obs
	e.restart() // Start: catalogue and incident list, anonymous

	retry, err := e.sink.Send(t.Context(), fail(1, hours(0)))
	if err == nil || !retry || !errors.Is(err, statuspage.ErrUnauthorized) {
		t.Fatalf("expired token: retry=%v err=%v, want a retryable ErrUnauthorized", retry, err)
	}
	if strings.Contains(err.Error(), expired) {
		t.Fatalf("the error holds the token: %v", err)
	}
	eq(t, "incidents after the refusal", len(e.incidents()), 0)

	if err := os.WriteFile(file, []byte(is.IDToken(time.Hour)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.send(fail(1, hours(0)))
	eq(t, "incidents after the rotation", len(e.incidents()), 1)
	events, reasons := obs.get()
	if len(events) < 2 || events[0] != "refused" || events[len(events)-1] != "accepted" {
		t.Errorf("auth events %v, want refused ... accepted", events)
	}
	for _, r := range reasons {
		if strings.Contains(r, expired) {
			t.Errorf("a refusal reason holds the token: %s", r)
		}
	}
	for _, r := range e.fake.Requests() {
		switch {
		case r.Method == "GET" && r.Bearer:
			t.Errorf("GET %s carried an Authorization header", r.Path)
		case r.Method != "GET" && !r.Bearer:
			t.Errorf("%s %s without a token", r.Method, r.Path)
		}
		if r.Status == 401 && r.Method == "GET" {
			t.Errorf("GET %s refused", r.Path)
		}
	}
}

// rotatingSource hands out a stale token until it is told of a rejection, then a fresh
// one: the refused write is sent again at once, within the same Send.
type rotatingSource struct {
	mu       sync.Mutex
	cur      string
	fresh    func() string
	rejected int
}

func (s *rotatingSource) BearerToken(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, nil
}

func (s *rotatingSource) Rejected(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == s.cur {
		s.rejected++
		s.cur = s.fresh()
	}
}

func TestRejectedTokenRetriedOnceWithFreshToken(t *testing.T) {
	e, is := behindOathkeeper(t)
	src := &rotatingSource{cur: is.IDToken(-time.Second), fresh: func() string { return is.IDToken(time.Hour) }}
	e.copts.Auth = src
	e.restart()
	e.send(fail(1, hours(0)))
	eq(t, "incidents", len(e.incidents()), 1)
	eq(t, "rejections told", src.rejected, 1)

	// A source without a better token: one attempt, no loop.
	bad := &rotatingSource{cur: "not-a-jwt", fresh: func() string { return "not-a-jwt" }}
	e.copts.Auth = bad
	e.restart()
	e.fake.ResetRequests()
	retry, err := e.sink.Send(t.Context(), fail(2, hours(1)))
	if !retry || !errors.Is(err, statuspage.ErrUnauthorized) {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	writes := 0
	for _, r := range e.fake.Requests() {
		if r.Method != "GET" {
			writes++
		}
	}
	eq(t, "writes sent with an unchanged token", writes, 1)
}

// A source without any token: the write is not sent and waits (retryable, ErrUnauthorized).
func TestNoTokenIsRetryable(t *testing.T) {
	e, _ := behindOathkeeper(t)
	e.copts.Token = func() (string, error) { return "", errors.New("open /run/secrets/token: no such file or directory") }
	e.restart()
	e.fake.ResetRequests()
	retry, err := e.sink.Send(t.Context(), fail(1, hours(0)))
	if !retry || !errors.Is(err, statuspage.ErrUnauthorized) {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	for _, r := range e.fake.Requests() {
		if r.Method != "GET" {
			t.Errorf("%s %s sent without a token", r.Method, r.Path)
		}
	}
}
