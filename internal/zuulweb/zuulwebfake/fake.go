// Package zuulwebfake is an in-process zuul-web for tests: an httptest server that
// serves the buildset, pipeline and info endpoints with zuul-web's JSON shapes and its
// error behaviour: CherryPy HTML error pages, 404 for a query parameter
// the emulated version does not know, 200 HTML for unknown paths, 401 JSON and 403 empty
// for read-protected tenants, and buildsets whose result is null first and final later.
// The /builds and /build endpoints are not served.
package zuulwebfake

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Options configure New.
type Options struct {
	// Version is the emulated zuul-web version, "11.2.0" by default. Before 11.1
	// `exclude_result` is an unknown parameter (404).
	Version string
	// Tokens, when not empty, make every tenant read-protected: a request needs
	// "Authorization: Bearer <one of Tokens>" (else 401 JSON), and a token in Forbidden is
	// valid but matches no access rule (403, empty body).
	Tokens    []string
	Forbidden []string
}

// Server is the fake zuul-web. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	opts Options

	mu        sync.Mutex
	tenants   map[string]*tenant
	nextID    int64
	nextBuild int64
	failures  []int // statuses the next API requests answer with, in order
	requests  []string
}

type tenant struct {
	pipelines []string
	buildsets []*Buildset // ascending ID
}

// New starts the fake; it is closed at the end of the test by the caller (Close).
func New(o Options) *Server {
	if o.Version == "" {
		o.Version = "11.2.0"
	}
	s := &Server{opts: o, tenants: map[string]*tenant{}, nextID: 1000, nextBuild: 50000}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/info", s.info)
	mux.HandleFunc("GET /api/tenant/{tenant}/info", s.info)
	mux.HandleFunc("GET /api/tenant/{tenant}/buildsets", s.api(s.buildsets))
	mux.HandleFunc("GET /api/tenant/{tenant}/buildset/{uuid}", s.api(s.buildset))
	mux.HandleFunc("GET /api/tenant/{tenant}/pipelines", s.api(s.pipelines))
	mux.HandleFunc("/", spa) // the web UI's index.html for anything else, with 200
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.URL.RequestURI())
		s.mu.Unlock()
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	return s
}

// AddTenant declares a tenant and its pipelines (Add declares them on the fly too).
func (s *Server) AddTenant(name string, pipelines ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenant(name)
	for _, p := range pipelines {
		if !slices.Contains(t.pipelines, p) {
			t.pipelines = append(t.pipelines, p)
		}
	}
}

func (s *Server) tenant(name string) *tenant {
	t := s.tenants[name]
	if t == nil {
		t = &tenant{}
		s.tenants[name] = t
	}
	return t
}

// Add stores a buildset and returns it with its id, uuid and build ids assigned. An id
// must be larger than every id before it.
func (s *Server) Add(tenantName string, bs Buildset) Buildset {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenant(tenantName)
	if bs.Pipeline != "" && !slices.Contains(t.pipelines, bs.Pipeline) {
		t.pipelines = append(t.pipelines, bs.Pipeline)
	}
	if bs.ID == 0 {
		s.nextID++
		bs.ID = s.nextID
	} else if bs.ID > s.nextID {
		s.nextID = bs.ID
	}
	if bs.UUID == "" {
		bs.UUID = randomHex()
	}
	bs.Builds = slices.Clone(bs.Builds)
	for i := range bs.Builds {
		b := &bs.Builds[i]
		if b.ID == 0 {
			s.nextBuild++
			b.ID = s.nextBuild
		}
		if b.UUID == "" {
			b.UUID = randomHex()
		}
	}
	stored := bs
	t.buildsets = append(t.buildsets, &stored)
	slices.SortFunc(t.buildsets, func(a, b *Buildset) int { return cmp.Compare(a.ID, b.ID) })
	return bs
}

// AddJSON stores a buildset detail given in zuul-web's JSON (e.g. a rest-samples file).
func (s *Server) AddJSON(tenantName string, detail []byte) (Buildset, error) {
	var w wireBuildset
	if err := json.Unmarshal(detail, &w); err != nil {
		return Buildset{}, err
	}
	return s.Add(tenantName, w.model()), nil
}

// Update changes a stored buildset, e.g. to turn a null result final (the race in which
// MQTT arrives before the database has the result). It reports whether the uuid exists.
func (s *Server) Update(tenantName, uuid string, f func(*Buildset)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenantName]; t != nil {
		for _, bs := range t.buildsets {
			if bs.UUID == uuid {
				f(bs)
				return true
			}
		}
	}
	return false
}

// FailNext makes the next API requests (buildsets, buildset, pipelines), one per status,
// answer with that status and CherryPy's HTML error page (500, 422 "isn't ready", ...).
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, statuses...)
}

// Requests returns the request URIs received so far (path and query).
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// CountRequests counts the requests whose URI contains substr.
func (s *Server) CountRequests(substr string) int {
	n := 0
	for _, r := range s.Requests() {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

// api wraps a tenant endpoint with what zuul-web does first: injected failures, tenant
// lookup (check_tenant_auth), then authorization.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, *tenant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		s.mu.Lock()
		var fail int
		if len(s.failures) > 0 {
			fail, s.failures = s.failures[0], s.failures[1:]
		}
		t := s.tenants[r.PathValue("tenant")]
		s.mu.Unlock()
		switch {
		case fail == http.StatusUnprocessableEntity:
			htmlError(w, fail, "Tenant "+r.PathValue("tenant")+" isn't ready")
			return
		case fail != 0:
			htmlError(w, fail, "The server encountered an unexpected condition which prevented it from fulfilling the request.")
			return
		case t == nil:
			htmlError(w, http.StatusNotFound, "Unknown tenant")
			return
		}
		if !s.authorize(w, r) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		h(w, r, t)
	}
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if len(s.opts.Tokens) == 0 && len(s.opts.Forbidden) == 0 {
		return true // public tenant: any Authorization header is ignored
	}
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	switch {
	case h == "":
		authError(w, "MissingAuthError", `Missing "Authorization" header`)
	case !ok:
		authError(w, "InvalidAuthFormat", `"Authorization" header must start with "Bearer"`)
	case slices.Contains(s.opts.Forbidden, tok):
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusForbidden)
	case slices.Contains(s.opts.Tokens, tok):
		return true
	default:
		authError(w, "AuthTokenInvalidSignatureException", "Invalid signature")
	}
	return false
}

// buildsetParams are the parameters of the buildsets handler; anything else is a 404,
// as CherryPy answers for an unexpected keyword argument.
var buildsetParams = []string{"project", "pipeline", "change", "branch", "patchset", "ref",
	"newrev", "uuid", "result", "complete", "limit", "skip", "idx_min", "idx_max"}

func (s *Server) buildsets(w http.ResponseWriter, r *http.Request, t *tenant) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(buildsetParams, k) && (k != "exclude_result" || !s.excludeSupported()) {
			htmlError(w, http.StatusNotFound, "Nothing matches the given URI")
			return
		}
	}
	ints := map[string]int64{"limit": 50, "skip": 0, "idx_min": 0, "idx_max": 0}
	for k := range ints {
		if v := q.Get(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 && (k == "limit" || k == "skip") || len(q[k]) > 1 {
				if strings.HasPrefix(k, "idx") && err != nil {
					htmlError(w, http.StatusBadRequest, "idx_min, idx_max must be integers")
				} else {
					htmlError(w, http.StatusInternalServerError, "The server encountered an unexpected condition which prevented it from fulfilling the request.")
				}
				return
			}
			ints[k] = n
		}
	}
	var out []wireBuildset
	for i := len(t.buildsets) - 1; i >= 0; i-- { // ORDER BY id DESC
		bs := t.buildsets[i]
		if !matches(bs, q, ints) {
			continue
		}
		out = append(out, bs.wire(false))
	}
	skip, limit := int(ints["skip"]), int(ints["limit"])
	out = out[min(skip, len(out)):]
	out = out[:min(limit, len(out))]
	if out == nil {
		out = []wireBuildset{}
	}
	writeJSON(w, out)
}

func matches(bs *Buildset, q map[string][]string, ints map[string]int64) bool {
	anyOf := func(key, v string, glob bool) bool {
		vals := q[key]
		if len(vals) == 0 {
			return true
		}
		for _, want := range vals {
			if glob && strings.Contains(want, "*") {
				if ok, _ := path.Match(want, v); ok {
					return true
				}
			} else if want == v {
				return true
			}
		}
		return false
	}
	refOK := func(key string, get func(Ref) string, glob bool) bool {
		if len(q[key]) == 0 {
			return true
		}
		for _, r := range bs.Refs {
			if anyOf(key, get(r), glob) {
				return true
			}
		}
		return false
	}
	if !anyOf("pipeline", bs.Pipeline, true) || !anyOf("uuid", bs.UUID, false) ||
		!refOK("project", func(r Ref) string { return r.Project }, true) ||
		!refOK("branch", func(r Ref) string { return r.Branch }, true) ||
		!refOK("ref", func(r Ref) string { return r.Ref }, false) ||
		!refOK("change", func(r Ref) string { return strconv.FormatInt(r.Change, 10) }, false) {
		return false
	}
	if len(q["result"]) > 0 && (bs.Result == "" || !slices.Contains(q["result"], bs.Result)) {
		return false
	}
	// result NOT IN (...) is never true for a NULL result: running buildsets drop out too.
	if ex := q["exclude_result"]; len(ex) > 0 && (bs.Result == "" || slices.Contains(ex, bs.Result)) {
		return false
	}
	if c := q["complete"]; len(c) > 0 && c[0] != "" {
		if strings.EqualFold(c[0], "true") != (bs.Result != "") {
			return false
		}
	}
	if ints["idx_min"] > 0 && bs.ID < ints["idx_min"] {
		return false
	}
	if ints["idx_max"] > 0 && bs.ID > ints["idx_max"] {
		return false
	}
	return true
}

func (s *Server) buildset(w http.ResponseWriter, r *http.Request, t *tenant) {
	if len(r.URL.Query()) > 0 {
		htmlError(w, http.StatusNotFound, "Nothing matches the given URI")
		return
	}
	for _, bs := range t.buildsets {
		if bs.UUID == r.PathValue("uuid") {
			writeJSON(w, bs.wire(true))
			return
		}
	}
	htmlError(w, http.StatusNotFound, "Buildset not found")
}

func (s *Server) pipelines(w http.ResponseWriter, _ *http.Request, t *tenant) {
	type trigger struct {
		Name   string `json:"name"`
		Driver string `json:"driver"`
	}
	type pipeline struct {
		Name     string    `json:"name"`
		Triggers []trigger `json:"triggers"`
	}
	out := []pipeline{}
	for _, p := range t.pipelines {
		tr := trigger{"github", "github"}
		if strings.HasPrefix(p, "periodic") || p == "compliance_check" {
			tr = trigger{"timer", "timer"}
		}
		out = append(out, pipeline{p, []trigger{tr}})
	}
	writeJSON(w, out)
}

// info is never protected and answers 200 even for an unknown tenant, as zuul-web does.
func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	info := map[string]any{
		"capabilities": map[string]any{"job_history": true, "auth": map[string]any{
			"realms": map[string]any{}, "default_realm": "master",
			"read_protected": len(s.opts.Tokens) > 0 || len(s.opts.Forbidden) > 0}},
		"websocket_url": nil,
		"stats":         map[string]any{"prefix": nil, "type": "graphite", "url": nil},
	}
	if t := r.PathValue("tenant"); t != "" {
		info["tenant"] = t
	}
	writeJSON(w, map[string]any{"info": info})
}

func (s *Server) excludeSupported() bool {
	var major, minor int
	fmt.Sscanf(s.opts.Version, "%d.%d", &major, &minor)
	return major > 11 || major == 11 && minor >= 1
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// htmlError writes a CherryPy-style error page (production mode, no traceback).
func htmlError(w http.ResponseWriter, status int, msg string) {
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	body := "<!DOCTYPE html>\n<html><head><title>" + title + "</title></head>\n<body><h2>" + title +
		"</h2><p>" + msg + "</p></body></html>\n"
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write([]byte(body))
}

func authError(w http.ResponseWriter, name, desc string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="master"       error="%s"       error_description="%s"`, name, desc))
	b, _ := json.Marshal(map[string]any{"description": desc, "error": name, "realm": "master"})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(b)
}

func spa(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	w.Write([]byte("<!doctype html><html><head><title>Zuul</title></head><body><div id=\"root\"></div></body></html>\n"))
}

func randomHex() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
