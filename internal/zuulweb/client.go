// Package zuulweb is a read-only client of zuul-web's REST API (10.x, 11.x,
// master): the buildset list with keyset paging, the
// buildset detail, the pipeline list, and ToEvent, which maps a buildset to the same
// zuul.Event the MQTT path decodes. It does not poll and keeps no state beyond whether the
// server knows `exclude_result`; polling and de-duplication are package reconcile's.
package zuulweb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure New.
type Options struct {
	// BaseURL is zuul-web's root, e.g. https://zuul.sovereignit.cloud (API paths are
	// appended: /api/tenant/{tenant}/...). It is also the web root for build and buildset
	// page links in events.
	BaseURL string
	// Token returns a bearer token for read-protected tenants; it is called per request so
	// a rotated token is picked up. nil, or "", sends no Authorization header.
	Token func() (string, error)
	// HTTPClient nil = own client with a 60 s timeout (zuul-web's SQL timeout is 30 s).
	HTTPClient *http.Client
	// UserAgent "" = "zuul-bridge".
	UserAgent string
}

// Client is safe for concurrent use.
type Client struct {
	base  *url.URL
	root  string
	token func() (string, error)
	hc    *http.Client
	ua    string
	// noExclude is set once zuul-web answered exclude_result with 404 and the same
	// request without it succeeded (zuul-web < 11.1).
	noExclude atomic.Bool
}

const (
	defaultTimeout   = 60 * time.Second
	maxResponseBytes = 32 << 20 // no server-side limit on page size; bound it here
	maxErrorBytes    = 64 << 10
)

// New checks the options and builds a client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("zuulweb: base URL %q: must be an absolute http(s) URL", o.BaseURL)
	}
	if u.User != nil {
		return nil, errors.New("zuulweb: base URL must not carry credentials; use the token")
	}
	u.RawQuery, u.Fragment = "", ""
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "zuul-bridge"
	}
	return &Client{base: u, root: u.String(), token: o.Token, hc: hc, ua: ua}, nil
}

// Buildsets returns one page of GET /api/tenant/{tenant}/buildsets, newest _id first.
// Keyset paging: the next page is q.IdxMax = (smallest _id of this page) - 1; the last page
// is shorter than the limit (see Query.ExcludeResult for the one exception).
func (c *Client) Buildsets(ctx context.Context, tenant string, q Query) ([]Buildset, error) {
	path, err := tenantPath(tenant, "buildsets")
	if err != nil {
		return nil, err
	}
	withExclude := len(q.ExcludeResult) > 0 && !c.noExclude.Load()
	var raws []json.RawMessage
	err = c.get(ctx, path, q.values(withExclude), &raws)
	var ae *APIError
	if withExclude && errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		// zuul-web < 11.1 answers a parameter it does not know with 404 "Nothing matches
		// the given URI". Retry without it; only a success proves it was the parameter
		// (an unknown tenant is a 404 too).
		raws = nil
		if err2 := c.get(ctx, path, q.values(false), &raws); err2 != nil {
			return nil, err2
		}
		c.noExclude.Store(true)
		withExclude, err = false, nil
	}
	if err != nil {
		return nil, err
	}
	filter := len(q.ExcludeResult) > 0 && !withExclude
	out := make([]Buildset, 0, len(raws))
	for i, r := range raws {
		var bs Buildset
		if err := json.Unmarshal(r, &bs); err != nil {
			return nil, fmt.Errorf("zuulweb: %s: entry %d: %w", path, i, err)
		}
		if filter && !q.keep(&bs) {
			continue
		}
		bs.raw, bs.webRoot = r, c.root
		out = append(out, bs)
	}
	return out, nil
}

// Buildset returns GET /api/tenant/{tenant}/buildset/{uuid}, with all builds (retried
// attempts included, Final false) and events. An unknown uuid is an *APIError with
// Status 404.
func (c *Client) Buildset(ctx context.Context, tenant, uuid string) (*Buildset, error) {
	path, err := tenantPath(tenant, "buildset", uuid)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.get(ctx, path, nil, &raw); err != nil {
		return nil, err
	}
	bs := &Buildset{}
	if err := json.Unmarshal(raw, bs); err != nil {
		return nil, fmt.Errorf("zuulweb: %s: %w", path, err)
	}
	bs.raw, bs.webRoot = raw, c.root
	return bs, nil
}

// Pipelines returns the tenant's pipeline names in layout order
// (GET /api/tenant/{tenant}/pipelines). Unlike /info it answers 404 for an unknown tenant,
// so it also validates the tenant.
func (c *Client) Pipelines(ctx context.Context, tenant string) ([]string, error) {
	var ps []struct {
		Name string `json:"name"`
	}
	path, err := tenantPath(tenant, "pipelines")
	if err != nil {
		return nil, err
	}
	if err := c.get(ctx, path, nil, &ps); err != nil {
		return nil, err
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names, nil
}

// tenantPath builds /api/tenant/{tenant}/{parts...} (unescaped; URL.String escapes).
// An empty or slash-carrying segment would reach another route or the web UI's index.html,
// which answers 200 with HTML, so it is refused here.
func tenantPath(tenant string, parts ...string) (string, error) {
	for _, p := range append([]string{tenant}, parts...) {
		if err := CheckPathSegment(p); err != nil {
			return "", err
		}
	}
	return "/api/tenant/" + tenant + "/" + strings.Join(parts, "/"), nil
}

// get sends one GET and decodes a 2xx JSON body into out. Anything else is an *APIError;
// transport failures are wrapped with the URL.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	where := u.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("zuulweb: GET %s: %w", where, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if c.token != nil {
		tok, err := c.token()
		if err != nil {
			return fmt.Errorf("zuulweb: GET %s: token: %w", where, err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error repeats the URL; keep the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("zuulweb: GET %s: %w", where, err)
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return &APIError{Status: resp.StatusCode, Message: summarise(resp.StatusCode, ct, body), URL: where}
	}
	if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
		// A path zuul-web has no route for is served the web UI's index.html with 200:
		// a wrong base URL or a proxy page, never data.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return &APIError{Status: resp.StatusCode, URL: where,
			Message: clip(fmt.Sprintf("not JSON (Content-Type %q; wrong base URL?): %s", ct, summarise(resp.StatusCode, ct, body)))}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("zuulweb: GET %s: read body: %w", where, err)
	}
	if len(body) > maxResponseBytes {
		return fmt.Errorf("zuulweb: GET %s: response larger than %d bytes", where, maxResponseBytes)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("zuulweb: GET %s: decode: %w", where, err)
	}
	return nil
}

// CheckPathSegment accepts a tenant name (or another value) as one URL path segment: not
// empty, no '/', '?' or '#', and not "." or "..", which a URL resolves to another path.
func CheckPathSegment(p string) error {
	if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "/?#") {
		return fmt.Errorf("zuulweb: invalid path segment %q", p)
	}
	return nil
}
