package filter

import (
	"fmt"
	"strings"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// fieldKind says what of the event a field compares with.
type fieldKind uint8

const (
	fTenant fieldKind = iota
	fPipeline
	fProject
	fBranch
	fAction
	fResult
	fJob
)

// evalOrder is the order Match checks the fields of a block: the single-string fields first,
// since they reject most reports cheaply; result and job walk the builds, which can be 100+.
var evalOrder = []struct {
	key  string
	kind fieldKind
}{
	{"pipeline", fPipeline}, {"tenant", fTenant}, {"project", fProject}, {"branch", fBranch},
	{"action", fAction}, {"result", fResult}, {"job", fJob},
}

// field is one listed field of a block, compiled.
type field struct {
	key     string // "pipeline"
	kind    fieldKind
	raw     []string // as written, for Explain
	set     patternSet
	classes outcomeSet // result only: the class names listed
}

func (f *field) value(ev *zuul.Event) string {
	switch f.kind {
	case fTenant:
		return ev.Tenant
	case fPipeline:
		return ev.Pipeline
	case fProject:
		return ev.Project
	case fBranch:
		return ev.Branch
	case fAction:
		return ev.Action
	}
	return ""
}

func (f *field) holds(ev *zuul.Event) bool {
	switch f.kind {
	case fResult:
		if f.classes.has(ev.Outcome) {
			return true
		}
		if f.set.empty() {
			return false
		}
		// A result Zuul has not sent (start reports, builds still running) is not a value:
		// "*" must not make a start report look like it has one.
		if ev.Result != "" && f.set.match(ev.Result) {
			return true
		}
		for i := range ev.Builds {
			if r := ev.Builds[i].Result; r != "" && f.set.match(r) {
				return true
			}
		}
		return false
	case fJob:
		for i := range ev.Builds {
			if f.set.match(ev.Builds[i].JobName) {
				return true
			}
		}
		return false
	}
	return f.set.match(f.value(ev))
}

// smallSet is how many exact patterns a field compares one by one before a map pays off:
// comparing a few strings (length first) is faster than hashing.
const smallSet = 8

// patternSet is a compiled list of patterns: exact ones in a slice or a map, globs apart.
type patternSet struct {
	exact []string
	set   map[string]struct{}
	globs []namedGlob

	// A length check rejects most values before any string comparison: the lengths of the
	// exact patterns as a bit set (bit 63 for 63 and longer), and the shortest value any glob
	// can match. The hot loops over 100+ builds are mostly rejections.
	exactLens uint64
	globMin   int
}

func lenBit(n int) uint64 { return 1 << min(n, 63) }

type namedGlob struct {
	src string
	g   glob
}

func (p *patternSet) empty() bool { return len(p.exact) == 0 && p.set == nil && len(p.globs) == 0 }

func (p *patternSet) match(s string) bool {
	if p.exactLens&lenBit(len(s)) != 0 {
		for _, e := range p.exact {
			if s == e {
				return true
			}
		}
		if p.set != nil {
			if _, ok := p.set[s]; ok {
				return true
			}
		}
	}
	if len(p.globs) > 0 && len(s) >= p.globMin {
		for i := range p.globs {
			if p.globs[i].g.match(s) {
				return true
			}
		}
	}
	return false
}

// which returns the first pattern, as written, that matches s. Explain only.
func (p *patternSet) which(s string, raw []string) (string, bool) {
	for _, r := range raw {
		var one patternSet
		if one.add(r) == nil && one.match(s) {
			return r, true
		}
	}
	return "", false
}

// add compiles one pattern into the set.
func (p *patternSet) add(pat string) error {
	if pat == "" {
		return fmt.Errorf("empty pattern")
	}
	lit := pat
	if hasMeta(pat) {
		g, err := compileGlob(pat)
		if err != nil {
			return fmt.Errorf("bad glob %q: %v", pat, err)
		}
		var ok bool
		if lit, ok = g.exact(); !ok {
			if len(p.globs) == 0 || g.minLen() < p.globMin {
				p.globMin = g.minLen()
			}
			p.globs = append(p.globs, namedGlob{pat, g})
			return nil
		}
	}
	p.exactLens |= lenBit(len(lit))
	if p.set != nil {
		p.set[lit] = struct{}{}
		return nil
	}
	p.exact = append(p.exact, lit)
	if len(p.exact) > smallSet {
		p.set = make(map[string]struct{}, len(p.exact))
		for _, e := range p.exact {
			p.set[e] = struct{}{}
		}
		p.exact = nil
	}
	return nil
}

// outcomeSet is a bit set of zuul.Outcome values.
type outcomeSet uint8

var outcomeBits = map[string]outcomeSet{
	string(zuul.OutcomeSuccess): 1,
	string(zuul.OutcomeFailure): 2,
	string(zuul.OutcomeNeutral): 4,
	string(zuul.OutcomePending): 8,
}

func (s outcomeSet) has(o zuul.Outcome) bool {
	switch o {
	case zuul.OutcomeSuccess:
		return s&1 != 0
	case zuul.OutcomeFailure:
		return s&2 != 0
	case zuul.OutcomeNeutral:
		return s&4 != 0
	case zuul.OutcomePending:
		return s&8 != 0
	}
	return false
}

// knownResults are the upper-case values Zuul sends, used only to
// suggest the right spelling for "post_failure".
var knownResults = []string{
	"SUCCESS", "FAILURE", "POST_FAILURE", "RETRY_LIMIT", "TIMED_OUT", "NODE_FAILURE", "SKIPPED",
	"ABORTED", "CANCELED", "ERROR", "MERGE_CONFLICT", "MERGER_FAILURE", "MERGE_FAILURE",
	"CONFIG_ERROR", "NO_JOBS", "DEQUEUED", "DISK_FULL", "RETRY", "LOST", "DISCONNECT",
	"EXCEPTION", "NO_HANDLE",
}

// looksLikeClass reports whether a result pattern is written like a class name: lower-case
// letters, no upper-case, no space. Such a pattern that is not a class is a typo; Zuul's codes
// are upper-case, and free-text results (a job's failure-message) are sentences.
func looksLikeClass(p string) bool {
	lower := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'A' <= c && c <= 'Z', c == ' ', c == '\t':
			return false
		case 'a' <= c && c <= 'z':
			lower = true
		}
	}
	return lower
}

func classError(p string) error {
	msg := fmt.Sprintf("unknown result class %q (classes: success, failure, neutral, pending; "+
		"exact Zuul values are upper-case, e.g. POST_FAILURE)", p)
	up := strings.ToUpper(p)
	for _, r := range knownResults {
		if r == up {
			msg += fmt.Sprintf("; did you mean %q?", r)
			break
		}
	}
	return fmt.Errorf("%s", msg)
}

// compileField compiles the patterns of one field; it returns every problem, each naming
// the key ("match.result").
func compileField(block, key string, kind fieldKind, pats Patterns) (field, []error) {
	f := field{key: key, kind: kind, raw: append([]string(nil), pats...)}
	var errs []error
	for _, p := range pats {
		if kind == fResult {
			if bit, ok := outcomeBits[p]; ok {
				f.classes |= bit
				continue
			}
			if looksLikeClass(p) {
				errs = append(errs, fmt.Errorf("%s.%s: %w", block, key, classError(p)))
				continue
			}
		}
		if err := f.set.add(p); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", block, key, err))
		}
	}
	return f, errs
}
