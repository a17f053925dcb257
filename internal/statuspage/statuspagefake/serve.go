package statuspagefake

import (
	"crypto/subtle"
	"io"
	"net/http"
	"strings"
)

// oathkeeper401 is the body the upstream auth proxy answers for a missing or
// invalid token.
const oathkeeper401 = `{"error":{"code":401,"status":"Unauthorized","message":"Access credentials are invalid"}}` + "\n"

// serveHTTP is the whole request path: record, validate, fault injection,
// auth proxy, API, response validation.
func (f *Fake) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away while sending
	}
	authorized := f.authorized(r)
	var proxyStatus int
	var proxyBody string
	if f.proxy != nil {
		proxyStatus, proxyBody, authorized = f.proxy.check(r)
	}
	done := f.recordRequest(Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: body,
		Authorized: authorized, Bearer: r.Header.Get("Authorization") != ""})

	// Validate before deciding anything: a request the spec forbids is a
	// client bug whatever the fake answers.
	var vreq validatedRequest
	if !(r.Method == http.MethodGet && r.URL.Path == "/openapi.json") {
		var vs []string
		vreq, vs = f.spec.checkRequest(r, body)
		for _, v := range vs {
			f.addViolation(v)
		}
	}

	if proxyStatus != 0 {
		writeProxyAnswer(w, proxyStatus, proxyBody)
		done(proxyStatus)
		return
	}

	fault, faulted := f.fault(r, body)
	if faulted && !fault.LoseAnswer {
		f.applyFault(w, r, fault, done)
		return
	}

	if f.proxy == nil && f.opts.Token != "" && isWrite(r.Method) && !authorized {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, oathkeeper401)
		done(http.StatusUnauthorized)
		return
	}

	rep := f.dispatch(r, body)
	if faulted { // LoseAnswer: done on the server, the answer never arrives
		f.applyFault(w, r, Fault{CloseConn: true}, done)
		return
	}
	if rep.body != nil {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	}
	for _, v := range f.spec.checkResponse(vreq, rep.status, w.Header(), rep.body) {
		f.addViolation(v)
	}
	w.WriteHeader(rep.status)
	if rep.body != nil {
		_, _ = w.Write(rep.body)
	}
	done(rep.status)
}

func isWrite(method string) bool {
	return method == http.MethodPost || method == http.MethodPatch || method == http.MethodDelete
}

// authorized reports whether r carries "Bearer <Token>" ("bearer" in any
// case), or no token is configured.
func (f *Fake) authorized(r *http.Request) bool {
	if f.opts.Token == "" {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(f.opts.Token)) == 1
}
