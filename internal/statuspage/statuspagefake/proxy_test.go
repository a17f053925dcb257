package statuspagefake

import (
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/oidc/oidcfake"
)

// The Oathkeeper mode answers like the SCS deployment's proxy (rules per endpoint,
// anonymous GETs, JWTs of one trusted issuer on writes).
func TestOathkeeperMode(t *testing.T) {
	is := oidcfake.New(t, oidcfake.Options{})
	f := New(t, Options{Oathkeeper: &Oathkeeper{Issuer: is.URL(), JWKSURL: is.JWKSURL()}})
	c := newClient(t, f)
	body := openIncident(f, "2026-11-21T10:00:00Z", 50)

	c.must(200, "GET", "/components", nil) // anonymous read
	st, out := c.do("POST", "/incidents", body)
	if st != 401 || string(out) != oathkeeper401 {
		t.Errorf("write without a token: %d %s", st, out)
	}

	c.token = is.IDToken(time.Hour)
	st, out = c.do("GET", "/components", nil)
	if st != 401 || string(out) != oathkeeper401 {
		t.Errorf("GET with a valid token: %d %s, want 401 (anonymous authenticator declines)", st, out)
	}
	c.createIncident(body)

	c.token = is.IDToken(-time.Minute)
	if st, out := c.do("POST", "/incidents", body); st != 401 ||
		string(out) != `{"error":{"code":401,"message":"Access credentials are invalid","reason":"Token is expired","status":"Unauthorized"}}`+"\n" {
		t.Errorf("write with an expired token: %d %s", st, out)
	}
	c.token = "not.a.jwt"
	if st, _ := c.do("POST", "/incidents", body); st != 401 {
		t.Errorf("write with garbage: %d", st)
	}
	other := oidcfake.New(t, oidcfake.Options{})
	c.token = other.IDToken(time.Hour)
	if st, _ := c.do("POST", "/incidents", body); st != 401 {
		t.Errorf("write with a token of another issuer's key: %d", st)
	}
	forged := oidcfake.New(t, oidcfake.Options{Issuer: "https://evil.example"})
	c.token = forged.IDToken(time.Hour)
	if st, _ := c.do("POST", "/incidents", body); st != 401 {
		t.Errorf("write with an untrusted issuer: %d", st)
	}

	c.token = ""
	for _, tc := range [][2]string{{"GET", "/components/"}, {"GET", "/incidents/not-a-uuid"}, {"GET", "/nothing"}, {"OPTIONS", "/incidents"}, {"PUT", "/incidents"}} {
		st, out := c.do(tc[0], tc[1], nil)
		if st != 404 || string(out) != oathkeeper404 {
			t.Errorf("%s %s: %d %s, want Oathkeeper's 404", tc[0], tc[1], st, out)
		}
	}
	f.ResetViolations() // the unmatched URLs are not in the spec either
	var bearerGets int
	for _, r := range f.Requests() {
		if r.Method == "GET" && r.Bearer {
			bearerGets++
		}
	}
	if bearerGets != 1 {
		t.Errorf("%d GETs recorded with a header, want 1", bearerGets)
	}
}
