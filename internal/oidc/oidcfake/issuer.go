// Package oidcfake is an in-process OpenID Connect issuer for tests that behaves like the
// Dex of the SCS status page deployment where the bridge depends on it: a discovery
// document, a JWKS, and a token endpoint that answers the refresh_token grant with a new
// id_token and a rotated refresh token. A refresh token that was used once stays valid
// for a short reuse window (answering with its successor, as Dex does), then it is
// refused. id_tokens are short-lived (configurable) and signed RS256 with the issuer's key.
package oidcfake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Options configure New. The zero value is a public client "status-page-web" with 2 s
// id_tokens and a 3 s reuse window.
type Options struct {
	ClientID     string        // default "status-page-web"
	ClientSecret string        // "" = public client (no secret checked)
	IDTokenTTL   time.Duration // default 2s
	ReuseWindow  time.Duration // default 3s (Dex's reuseInterval)
	// Now is the issuer's clock (iat, exp, the reuse window); nil = time.Now.
	Now func() time.Time
	// Issuer overrides the iss claim (and the discovery document's issuer), to test a
	// token of an untrusted issuer. "" = the server's URL.
	Issuer string
	// Answer, if set, runs after the issuer decided its answer to the n-th refresh grant
	// (1-based; the rotation, reuse or refusal has happened) and before the answer is
	// written. It may block to hold the answer back; true drops the answer: the
	// connection is closed without one, as when an answer is lost on the way.
	Answer func(n int) (drop bool)
}

// Counts are what the issuer observed, for assertions.
type Counts struct {
	Refreshes     int // refresh grants answered with a rotated refresh token
	Reuses        int // an already used refresh token accepted within the reuse window
	Refused       int // refresh grants refused (unknown, revoked, or reused too late)
	ReusedTooLate int // of Refused: a used refresh token presented after its window
	BadClient     int // wrong client id or secret
}

// Issuer is a running fake issuer. All methods are goroutine-safe.
type Issuer struct {
	o   Options
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string
	sig jose.Signer

	mu     sync.Mutex
	tokens map[string]*refreshToken
	counts Counts
	issued []string // every token (refresh and id) handed out, for leak checks
	down   bool
	grants int // refresh grants seen, for Options.Answer
}

type refreshToken struct {
	successor string    // "" = current
	usedAt    time.Time // when it was rotated
	revoked   bool
}

// New starts an issuer; t.Cleanup stops it.
func New(t testing.TB, o Options) *Issuer {
	t.Helper()
	if o.ClientID == "" {
		o.ClientID = "status-page-web"
	}
	if o.IDTokenTTL <= 0 {
		o.IDTokenTTL = 2 * time.Second
	}
	if o.ReuseWindow <= 0 {
		o.ReuseWindow = 3 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &Issuer{o: o, key: key, kid: randomHex(8), tokens: map[string]*refreshToken{}}
	is.sig, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", is.kid))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", is.discovery)
	mux.HandleFunc("GET /keys", is.keys)
	mux.HandleFunc("POST /token", is.token)
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// URL is the issuer URL (what BRIDGE_STATUSPAGE_OIDC_ISSUER names).
func (is *Issuer) URL() string { return is.srv.URL }

// JWKSURL is where the signing keys are published.
func (is *Issuer) JWKSURL() string { return is.srv.URL + "/keys" }

// ClientID is the client the issuer accepts.
func (is *Issuer) ClientID() string { return is.o.ClientID }

func (is *Issuer) issuer() string {
	if is.o.Issuer != "" {
		return is.o.Issuer
	}
	return is.srv.URL
}

// Seed hands out a fresh refresh token, as the authorization-code flow with scope
// offline_access does for an operator.
func (is *Issuer) Seed() string {
	is.mu.Lock()
	defer is.mu.Unlock()
	rt := "rt-" + randomHex(16)
	is.tokens[rt] = &refreshToken{}
	is.issued = append(is.issued, rt)
	return rt
}

// IDToken signs an id_token for the client that expires after ttl (negative: already
// expired), like one an operator copied from a login.
func (is *Issuer) IDToken(ttl time.Duration) string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.idTokenLocked(is.o.Now(), ttl)
}

func (is *Issuer) idTokenLocked(now time.Time, ttl time.Duration) string {
	iat := now
	if ttl < 0 {
		iat = now.Add(2 * ttl)
	}
	claims := struct {
		jwt.Claims
		Email string `json:"email"`
		Nonce string `json:"nonce"`
	}{
		Claims: jwt.Claims{Issuer: is.issuer(), Subject: "bridge-operator", Audience: jwt.Audience{is.o.ClientID},
			IssuedAt: jwt.NewNumericDate(iat), Expiry: jwt.NewNumericDate(now.Add(ttl)), ID: randomHex(8)},
		Email: "operator@example.org",
		Nonce: randomHex(4),
	}
	s, err := jwt.Signed(is.sig).Claims(claims).Serialize()
	if err != nil {
		panic(err) // a key of our own making cannot fail to sign
	}
	is.issued = append(is.issued, s)
	return s
}

// Revoke makes every refresh token handed out so far invalid (the operator's session
// was deleted); a new Seed is needed.
func (is *Issuer) Revoke() {
	is.mu.Lock()
	defer is.mu.Unlock()
	for _, rt := range is.tokens {
		rt.revoked = true
	}
}

// SetDown makes the token endpoint answer 503 (true) or serve again (false).
func (is *Issuer) SetDown(down bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.down = down
}

// Counts returns what the issuer observed so far.
func (is *Issuer) Counts() Counts {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.counts
}

// Issued returns every refresh token and id_token handed out so far.
func (is *Issuer) Issued() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return append([]string(nil), is.issued...)
}

func (is *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                is.issuer(),
		"authorization_endpoint":                is.srv.URL + "/auth",
		"token_endpoint":                        is.srv.URL + "/token",
		"jwks_uri":                              is.JWKSURL(),
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

func (is *Issuer) keys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

// token answers the refresh_token grant the way Dex does (errors as RFC 6749 JSON).
func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Couldn't parse data")
		return
	}
	status, body, n := is.grant(r)
	if n > 0 && is.o.Answer != nil && is.o.Answer(n) {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	if status == http.StatusOK {
		w.Header().Set("Cache-Control", "no-store")
	}
	writeJSON(w, status, body)
}

// grant decides the answer to a token request; n > 0 numbers a refresh grant.
func (is *Issuer) grant(r *http.Request) (status int, body any, n int) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.down {
		return http.StatusServiceUnavailable, oauthErr("temporarily_unavailable", "down for a test"), 0
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if clientID != is.o.ClientID || (is.o.ClientSecret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(is.o.ClientSecret)) != 1) {
		is.counts.BadClient++
		return http.StatusUnauthorized, oauthErr("invalid_client", "Invalid client credentials."), 0
	}
	if g := r.PostForm.Get("grant_type"); g != "refresh_token" {
		return http.StatusBadRequest, oauthErr("unsupported_grant_type", "the fake answers the refresh_token grant only"), 0
	}
	is.grants++
	n = is.grants
	presented := r.PostForm.Get("refresh_token")
	rt, ok := is.tokens[presented]
	now := is.o.Now()
	refused := func() (int, any, int) {
		is.counts.Refused++
		return http.StatusBadRequest, oauthErr("invalid_request", "Refresh token is invalid or has already been claimed by another client."), n
	}
	switch {
	case !ok || rt.revoked:
		return refused()
	case rt.successor != "":
		if now.Sub(rt.usedAt) > is.o.ReuseWindow {
			is.counts.ReusedTooLate++
			return refused()
		}
		is.counts.Reuses++
		return http.StatusOK, is.answer(now, rt.successor), n
	}
	next := "rt-" + randomHex(16)
	rt.successor, rt.usedAt = next, now
	is.tokens[next] = &refreshToken{}
	is.issued = append(is.issued, next)
	is.counts.Refreshes++
	return http.StatusOK, is.answer(now, next), n
}

func (is *Issuer) answer(now time.Time, refresh string) map[string]any {
	id := is.idTokenLocked(now, is.o.IDTokenTTL)
	access := "at-" + randomHex(16)
	is.issued = append(is.issued, access)
	return map[string]any{
		"access_token":  access,
		"token_type":    "bearer",
		"expires_in":    int(is.o.IDTokenTTL.Seconds()),
		"refresh_token": refresh,
		"id_token":      id,
	}
}

func oauthErr(code, desc string) map[string]string {
	return map[string]string{"error": code, "error_description": desc}
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
