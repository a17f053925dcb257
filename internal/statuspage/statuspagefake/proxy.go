package statuspagefake

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

// Oathkeeper puts the fake behind the auth proxy of the SCS status page deployment (ORY
// Oathkeeper with one rule per endpoint): a GET is anonymous and refused (401) when it
// carries an Authorization header; a POST, PATCH or DELETE needs "Bearer <JWT>" signed by
// a key of JWKSURL, issued by Issuer and not expired (no audience or scope is required);
// a method and URL that match no rule (trailing slash, an id that is no UUID, OPTIONS) is
// answered 404. Both refusals carry Oathkeeper's JSON body.
type Oathkeeper struct {
	Issuer  string // the trusted issuer (iss)
	JWKSURL string // where the issuer's keys are
}

// oathkeeper404 is the body for a request that matches no rule.
const oathkeeper404 = `{"error":{"code":404,"status":"Not Found","message":"Requested url does not match any rules"}}` + "\n"

const uuidRE = `[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`

// proxyRule is one access rule: a URL regex and its methods.
type proxyRule struct {
	url     *regexp.Regexp
	methods []string
}

func proxyRules() []proxyRule {
	rule := func(path string, methods ...string) proxyRule {
		path = strings.NewReplacer("<id>", uuidRE, "<name>", `[^/]+`, "<order>", `[0-9]+`).Replace(path)
		return proxyRule{url: regexp.MustCompile(`^` + path + `$`), methods: methods}
	}
	return []proxyRule{
		rule("/phases", "GET", "POST"),
		rule("/impacttypes", "GET", "POST"),
		rule("/impacttypes/<id>", "GET", "PATCH", "DELETE"),
		rule("/severities", "GET", "POST"),
		rule("/severities/<name>", "GET", "PATCH", "DELETE"),
		rule("/components", "GET", "POST"),
		rule("/components/<id>", "GET", "PATCH", "DELETE"),
		rule("/incidents", "GET", "POST"),
		rule("/incidents/<id>", "GET", "PATCH", "DELETE"),
		rule("/incidents/<id>/updates", "GET", "POST"),
		rule("/incidents/<id>/updates/<order>", "GET", "PATCH", "DELETE"),
	}
}

// proxy is the running Oathkeeper mode of a Fake.
type proxy struct {
	rules    []proxyRule
	verifier *gooidc.IDTokenVerifier
}

func newProxy(o *Oathkeeper) *proxy {
	keys := gooidc.NewRemoteKeySet(context.Background(), o.JWKSURL)
	return &proxy{
		rules: proxyRules(),
		verifier: gooidc.NewVerifier(o.Issuer, keys, &gooidc.Config{
			SkipClientIDCheck: true, // the deployment's rules require no audience
		}),
	}
}

// check decides like Oathkeeper. It returns the refusal to send (status 0: forwarded to
// the API) and whether the request carried a valid token.
func (p *proxy) check(r *http.Request) (status int, body string, authorized bool) {
	matched := false
	for _, rule := range p.rules {
		if rule.url.MatchString(r.URL.Path) {
			for _, m := range rule.methods {
				matched = matched || m == r.Method
			}
		}
	}
	if !matched {
		return http.StatusNotFound, oathkeeper404, false
	}
	header := r.Header.Get("Authorization")
	valid, reason := false, ""
	if scheme, tok, ok := strings.Cut(header, " "); ok && strings.EqualFold(scheme, "bearer") {
		_, err := p.verifier.Verify(r.Context(), strings.TrimSpace(tok))
		var expired *gooidc.TokenExpiredError
		switch {
		case err == nil:
			valid = true
		case errors.As(err, &expired):
			reason = "Token is expired"
		default:
			reason = "Token is invalid or not issued by a trusted issuer"
		}
	}
	if r.Method == http.MethodGet {
		// The anonymous authenticator declines any request that has the header, and the
		// GET rules have no other authenticator.
		if header != "" {
			return http.StatusUnauthorized, oathkeeper401, valid
		}
		return 0, "", false
	}
	if !valid {
		return http.StatusUnauthorized, oathkeeper401With(reason), false
	}
	return 0, "", true
}

// oathkeeper401With is the 401 body with the jwt authenticator's reason, when it had one.
func oathkeeper401With(reason string) string {
	if reason == "" {
		return oathkeeper401
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": 401, "status": "Unauthorized", "message": "Access credentials are invalid", "reason": reason}})
	return string(b) + "\n"
}

func writeProxyAnswer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
