package statuspage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Token returns the bearer token for a write. The composition root re-reads a mounted
// file on every call so that a rotated token is used without a restart. A nil Token sends
// no Authorization header.
type Token func() (string, error)

// ClientOptions configure NewClient.
type ClientOptions struct {
	BaseURL string // e.g. https://status-api.k8s.scs.community (no version prefix)
	Token   Token  // nil = anonymous; ignored when Auth is set
	// Auth, when set, gives the token for writes and hears when it was refused.
	Auth TokenSource
	// AuthObserver, when set, hears whether each write got past authentication.
	AuthObserver AuthObserver
	HTTPClient   *http.Client // nil = own client with a 10 s timeout
	UserAgent    string       // "" = "zuul-bridge"
}

// Client is a typed client of the SCS status page API. It is safe for concurrent use.
// Only writes carry the token; reads are anonymous.
type Client struct {
	base *url.URL
	auth TokenSource // nil = anonymous
	obs  AuthObserver
	hc   *http.Client
	ua   string
}

const (
	defaultHTTPTimeout = 10 * time.Second
	maxResponseBytes   = 16 << 20 // lists are unpaginated; bound them anyway
	maxErrorMessage    = 300
)

// NewClient checks the base URL and builds a client.
func NewClient(o ClientOptions) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("statuspage: base URL %q: must be an absolute http(s) URL", o.BaseURL)
	}
	if u.User != nil {
		return nil, errors.New("statuspage: base URL must not carry credentials; use the token")
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: defaultHTTPTimeout}
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "zuul-bridge"
	}
	auth := o.Auth
	if auth == nil && o.Token != nil {
		auth = o.Token
	}
	return &Client{base: u, auth: auth, obs: o.AuthObserver, hc: hc, ua: ua}, nil
}

// do sends one request. in (if not nil) is sent as JSON; out (if not nil) receives the
// decoded 2xx body. Every failure is an *APIError, a *transportError or a *tokenError.
// A write refused with 401/403 is sent once more at once when the token source has a
// different token after being told (a refused request never reached the API).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("statuspage: encode %s %s: %w", method, path, err)
		}
		body = b
	}
	write := isWriteMethod(method)
	if !write || c.auth == nil {
		_, err := c.attempt(ctx, method, path, query, body, in != nil, "", out)
		return err
	}
	token, err := c.auth.BearerToken(ctx)
	if err != nil {
		c.refused(true, "no token: "+err.Error())
		// The error of a file read or a refresh names the path or the issuer, not a token.
		return &tokenError{err: err}
	}
	status, err := c.attempt(ctx, method, path, query, body, in != nil, token, out)
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		if status != 0 {
			c.accepted()
		}
		return err
	}
	c.auth.Rejected(token)
	c.refused(false, err.Error())
	fresh, ferr := c.auth.BearerToken(ctx)
	if ferr != nil || fresh == token || ctx.Err() != nil {
		return err
	}
	status, err = c.attempt(ctx, method, path, query, body, in != nil, fresh, out)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		c.auth.Rejected(fresh)
		c.refused(false, err.Error())
	case status != 0:
		c.accepted()
	}
	return err
}

func (c *Client) accepted() {
	if c.obs != nil {
		c.obs.AuthAccepted()
	}
}

func (c *Client) refused(noToken bool, reason string) {
	if c.obs != nil {
		c.obs.AuthRefused(noToken, reason)
	}
}

// attempt sends the request once and returns the answer's status (0 = no answer).
func (c *Client) attempt(ctx context.Context, method, path string, query url.Values, in []byte, hasBody bool, token string, out any) (int, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	var body io.Reader
	if hasBody {
		body = bytes.NewReader(in)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("statuspage: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if hasBody {
		// Without it the server binds nothing and answers 400.
		req.Header.Set("Content-Type", "application/json")
	}
	tok := strings.TrimSpace(token)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	write := method != http.MethodGet
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, &transportError{op: method + " " + path, err: redactErr(err, tok), ambiguous: write}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, &transportError{op: method + " " + path + ": read body", err: redactErr(err, tok), ambiguous: write}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, &APIError{Status: resp.StatusCode, Message: redact(errorMessage(raw), tok), Method: method, Path: path}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		// A 2xx we cannot read: for a write we do not know what was stored.
		return resp.StatusCode, &transportError{op: method + " " + path + ": decode answer", err: err, ambiguous: write}
	}
	return resp.StatusCode, nil
}

// errorMessage extracts the message of echo's {"message": ...} or Oathkeeper's
// {"error": {"message": ..., "reason": ...}}; anything else is returned shortened.
func errorMessage(raw []byte) string {
	var e struct {
		Message any `json:"message"`
		Error   *struct {
			Message string `json:"message"`
			Reason  string `json:"reason"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil {
		if s, ok := e.Message.(string); ok && s != "" {
			return shorten(s)
		}
		if e.Error != nil && e.Error.Message != "" {
			if e.Error.Reason != "" {
				return shorten(e.Error.Message + " (" + e.Error.Reason + ")")
			}
			return shorten(e.Error.Message)
		}
	}
	return shorten(strings.TrimSpace(string(raw)))
}

func shorten(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxErrorMessage {
		s = s[:maxErrorMessage] + "..."
	}
	return s
}

func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "<redacted>")
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr keeps the error chain (timeouts stay recognisable) while making sure the text
// cannot carry the token.
func redactErr(err error, token string) error {
	if token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return &redactedError{msg: redact(err.Error(), token), err: err}
}

// timeParam renders a query time in UTC so that no '+' has to survive URL decoding.
func timeParam(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ListComponents is GET /components, or GET /components?at=T when at is not zero (the
// list endpoint handles at correctly; the single-component one does not).
func (c *Client) ListComponents(ctx context.Context, at time.Time) ([]Component, error) {
	var q url.Values
	if !at.IsZero() {
		q = url.Values{"at": {timeParam(at)}}
	}
	var r struct{ Data []Component }
	err := c.do(ctx, http.MethodGet, "/components", q, nil, &r)
	return r.Data, err
}

// ListImpactTypes is GET /impacttypes.
func (c *Client) ListImpactTypes(ctx context.Context) ([]ImpactType, error) {
	var r struct{ Data []ImpactType }
	err := c.do(ctx, http.MethodGet, "/impacttypes", nil, nil, &r)
	return r.Data, err
}

// ListSeverities is GET /severities.
func (c *Client) ListSeverities(ctx context.Context) ([]Severity, error) {
	var r struct{ Data []Severity }
	err := c.do(ctx, http.MethodGet, "/severities", nil, nil, &r)
	return r.Data, err
}

// GetPhases is GET /phases: the current (highest) generation.
func (c *Client) GetPhases(ctx context.Context) (PhaseList, error) {
	var r struct{ Data PhaseList }
	err := c.do(ctx, http.MethodGet, "/phases", nil, nil, &r)
	return r.Data, err
}

// ListIncidents is GET /incidents?start&end: ended incidents overlapping the window plus
// every open incident that began before end, however old.
func (c *Client) ListIncidents(ctx context.Context, start, end time.Time) ([]Incident, error) {
	q := url.Values{"start": {timeParam(start)}, "end": {timeParam(end)}}
	var r struct{ Data []Incident }
	err := c.do(ctx, http.MethodGet, "/incidents", q, nil, &r)
	return r.Data, err
}

// GetIncident is GET /incidents/{id}.
func (c *Client) GetIncident(ctx context.Context, id string) (Incident, error) {
	var r struct{ Data Incident }
	err := c.do(ctx, http.MethodGet, "/incidents/"+url.PathEscape(id), nil, nil, &r)
	return r.Data, err
}

// CreateIncident is POST /incidents; it returns the new incident's id.
func (c *Client) CreateIncident(ctx context.Context, in NewIncident) (string, error) {
	in.BeganAt = in.BeganAt.UTC()
	var r struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/incidents", nil, in, &r); err != nil {
		return "", err
	}
	if r.ID == "" {
		return "", &transportError{op: "POST /incidents", err: errors.New("answer carries no id"), ambiguous: true}
	}
	return r.ID, nil
}

// EndIncident is the PATCH /incidents/{id} that sets endedAt and the closing phase.
func (c *Client) EndIncident(ctx context.Context, id string, in EndIncident) error {
	in.EndedAt = in.EndedAt.UTC()
	return c.do(ctx, http.MethodPatch, "/incidents/"+url.PathEscape(id), nil, in, nil)
}

// ListUpdates is GET /incidents/{id}/updates, sorted by order (the server does not sort).
func (c *Client) ListUpdates(ctx context.Context, id string) ([]IncidentUpdate, error) {
	var r struct{ Data []IncidentUpdate }
	if err := c.do(ctx, http.MethodGet, "/incidents/"+url.PathEscape(id)+"/updates", nil, nil, &r); err != nil {
		return nil, err
	}
	sortUpdates(r.Data)
	return r.Data, nil
}

// PostUpdate is POST /incidents/{id}/updates; it returns the order the server assigned.
// Callers must serialise posts per incident.
func (c *Client) PostUpdate(ctx context.Context, id string, u IncidentUpdate) (int, error) {
	u.Order = 0
	if u.CreatedAt != nil {
		t := u.CreatedAt.UTC()
		u.CreatedAt = &t
	}
	var r struct {
		Order *int `json:"order"`
	}
	if err := c.do(ctx, http.MethodPost, "/incidents/"+url.PathEscape(id)+"/updates", nil, u, &r); err != nil {
		return 0, err
	}
	if r.Order == nil {
		return -1, nil
	}
	return *r.Order, nil
}

// String names the client without secrets, for logs.
func (c *Client) String() string { return "statuspage(" + c.base.Redacted() + ")" }

func sortUpdates(us []IncidentUpdate) {
	sort.SliceStable(us, func(i, j int) bool { return us[i].Order < us[j].Order })
}
