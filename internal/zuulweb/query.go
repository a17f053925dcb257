package zuulweb

import (
	"net/url"
	"strconv"
)

// Query filters GET /api/tenant/{tenant}/buildsets. Zero values send
// nothing. Pipeline, Project and Branch accept `*` wildcards on zuul-web 10.1+.
type Query struct {
	Pipeline string
	Project  string
	Branch   string
	// Complete: nil = all buildsets, true = with a result only, false = running only.
	Complete *bool
	// Limit is the page size; 0 = the server default (50). zuul-web has no maximum.
	Limit int
	// IdxMax and IdxMin bound the buildset id (_id), both inclusive: keyset paging is
	// IdxMax = smallest _id of the previous page - 1. 0 = unbounded.
	IdxMax int64
	IdxMin int64
	// ExcludeResult drops these results (e.g. DEQUEUED). Zuul's filter is SQL
	// `result NOT IN (...)`, which also drops buildsets without a result (running). On
	// zuul-web < 11.1 the parameter does not exist (404); the client then retries without it
	// and filters the page itself, with the same semantics: the page can then be shorter
	// than Limit although older buildsets exist, so page on until an empty page.
	ExcludeResult []string
}

func (q Query) values(withExclude bool) url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("pipeline", q.Pipeline)
	set("project", q.Project)
	set("branch", q.Branch)
	if q.Complete != nil {
		// Any value but "true" means "running only" to zuul-web.
		v.Set("complete", strconv.FormatBool(*q.Complete))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.IdxMin > 0 {
		v.Set("idx_min", strconv.FormatInt(q.IdxMin, 10))
	}
	if q.IdxMax > 0 {
		v.Set("idx_max", strconv.FormatInt(q.IdxMax, 10))
	}
	if withExclude {
		for _, r := range q.ExcludeResult {
			v.Add("exclude_result", r)
		}
	}
	return v
}

// keep applies ExcludeResult on the client, as SQL NOT IN does on the server.
func (q Query) keep(bs *Buildset) bool {
	if bs.Result == "" {
		return false
	}
	for _, r := range q.ExcludeResult {
		if bs.Result == r {
			return false
		}
	}
	return true
}
