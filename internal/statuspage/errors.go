package statuspage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// APIError is an answer of the status page API outside 2xx. It keeps the status code and
// the server's message; it never holds the token (the message is redacted before it is
// stored).
type APIError struct {
	Status  int
	Message string
	Method  string
	Path    string // without query string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("statuspage: %s %s: %d: %s", e.Method, e.Path, e.Status, msg)
}

// Temporary reports whether the same request may succeed later (see Retryable).
func (e *APIError) Temporary() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusUnauthorized, http.StatusForbidden:
		// The auth proxy refused the token of a write: the request never reached the API,
		// and a fresh token (rotated file, refresh) lets it through.
		return isWriteMethod(e.Method)
	case http.StatusInternalServerError:
		// Most 500s are permanent client errors of the server; the one known
		// transient one is the update-numbering collision of concurrent posts (§6).
		return e.Method == http.MethodPost && strings.HasSuffix(e.Path, "/updates")
	}
	return false
}

// transportError wraps a failure below HTTP (dial, reset, timeout, token file) or an
// unreadable success body. All of them are worth another attempt; ambiguous says the
// server may have applied a write although we saw no answer.
type transportError struct {
	op        string
	err       error
	ambiguous bool
}

func (e *transportError) Error() string   { return fmt.Sprintf("statuspage: %s: %v", e.op, e.err) }
func (e *transportError) Unwrap() error   { return e.err }
func (e *transportError) Temporary() bool { return true }

// Retryable classifies an error of this package: true for timeouts, connection errors,
// 429/502/503/504 and the update-collision 500; false for other 4xx/5xx and for errors
// that are not from the API (configuration, templates). A cancelled caller context is
// retryable too: the report was not applied and must come again.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) {
		return t.Temporary()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// MaybeApplied reports whether a failed write may nevertheless have been stored, so that
// the retry must look before writing again.
func MaybeApplied(err error) bool {
	var te *transportError
	if errors.As(err, &te) {
		return te.ambiguous
	}
	var ae *APIError
	if errors.As(err, &ae) {
		// A gateway may have forwarded the request before giving up.
		return ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// StatusOf is the HTTP status of an APIError in err, else 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}
