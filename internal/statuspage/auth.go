package statuspage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// TokenSource gives the bearer token for writes (POST, PATCH, DELETE; reads are
// anonymous: the SCS auth proxy refuses a GET that carries an Authorization header) and
// is told when the status page refused a token, so that it can get a fresh one: a file
// source reads its file again, an OIDC source refreshes. Implementations must be safe for
// concurrent use and must never put the token into an error.
type TokenSource interface {
	// BearerToken returns the token to send now. An error means no token is available
	// (missing file, issuer unreachable); the write fails retryably with ErrUnauthorized.
	BearerToken(ctx context.Context) (string, error)
	// Rejected says that token was answered 401 or 403. The next BearerToken should
	// return a fresh token if there is one.
	Rejected(token string)
}

// BearerToken makes a Token function a TokenSource: it is called for every write, so
// a rotated file is used at once; Rejected has nothing to do.
func (t Token) BearerToken(context.Context) (string, error) { return t() }

// Rejected implements TokenSource.
func (Token) Rejected(string) {}

// ErrUnauthorized is matched (errors.Is) by every failure that is about the token rather
// than the request: a 401 or 403 answer to a write, and a write that could not get a
// token at all. Such a write was not applied and may succeed with a fresh token.
var ErrUnauthorized = errors.New("statuspage: not authorised to write")

// Unauthorized reports whether the answer refused the credentials (401 or 403).
func (e *APIError) Unauthorized() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// Is makes errors.Is(err, ErrUnauthorized) true for a refused write.
func (e *APIError) Is(target error) bool {
	return target == ErrUnauthorized && e.Unauthorized() && isWriteMethod(e.Method)
}

// tokenError: the token source had no token. The write was not sent.
type tokenError struct{ err error }

func (e *tokenError) Error() string {
	return fmt.Sprintf("statuspage: no token for the write: %v", e.err)
}
func (e *tokenError) Unwrap() error        { return e.err }
func (e *tokenError) Temporary() bool      { return true }
func (e *tokenError) Is(target error) bool { return target == ErrUnauthorized }

// AuthObserver hears the outcome of every write as far as authentication goes: accepted
// (any answer but 401/403) or refused (401/403; noToken: no token was available, so
// nothing was sent). reason never holds a token.
type AuthObserver interface {
	AuthAccepted()
	AuthRefused(noToken bool, reason string)
}

func isWriteMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPatch || m == http.MethodDelete || m == http.MethodPut
}
