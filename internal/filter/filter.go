// Package filter decides which reports a route takes: the match: and exclude: blocks of a
// route in the rules file, compiled once at start-up and evaluated for every report. It does
// not read the rules file or know about sinks; the caller decodes the file (Spec and Patterns
// decode from YAML) and calls Compile per route.
//
// # Rules
//
// A block (match: or exclude:) lists fields; a field holds one pattern or a list of patterns.
//
//   - Every listed field must hold (AND across fields); a field holds if any of its patterns
//     holds (OR within a list). A field that is not listed does not constrain the report.
//   - A route takes a report if its match block holds and its exclude block does not. A missing
//     or empty match block holds for every report; a missing or empty exclude block excludes
//     nothing. There is no negation inside a list ("!foo"): write an exclude block.
//   - tenant, pipeline, project, branch and action compare with the report's field of that
//     name. action is the reporter section that fired: enqueue, start, success, failure,
//     merge-conflict, config-error, no-jobs, dequeue or disabled. branch is "" for tags and refs.
//   - job holds if the job name of any build of the buildset matches.
//   - result: the lower-case class names compare with the report's outcome:
//     success (buildset SUCCESS); failure (a final report that is not a success: any buildset
//     result other than SUCCESS, NO_JOBS and DEQUEUED, and for Zuul < 3.16 payloads without one,
//     the action and the voting builds decide); neutral (NO_JOBS, DEQUEUED); pending (enqueue
//     and start reports, which are never failures). Any other pattern is a Zuul result value,
//     upper-case (POST_FAILURE) or a glob (*FAILURE), and holds if it matches the buildset
//     result or the result of any build, voting or not; a result Zuul has not sent (start
//     reports, running builds) never matches. A lower-case word that is not a class name is an
//     error, to catch typos ("failur", "post_failure"). Note that result: [failure] means "the
//     report is a failure", while result: [FAILURE] also holds for a successful buildset whose
//     non-voting job failed.
//
// # Patterns
//
// Patterns are globs that must match the whole value. * matches any run of characters,
// including "/" ("opendev.org/*" matches "opendev.org/zuul/zuul-jobs", "stable/*" matches
// "stable/2024.1"); ? matches one character; [abc], [a-z] match one character of a class,
// [!abc] or [^abc] one character outside it; \ makes the next character literal (\*, \[).
// Inside [...], "-" and "]" must be written \- and \]. A pattern without * ? [ \ is an exact,
// case-sensitive comparison.
//
// In YAML a field takes a scalar or a list of scalars. Null, an empty string, an empty list, a
// map, a list inside the list, an unknown field and a field given twice are errors.
package filter

import (
	"errors"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Spec is one match (or exclude) block as written in the rules file.
type Spec struct {
	Tenant   Patterns `yaml:"tenant"`
	Pipeline Patterns `yaml:"pipeline"`
	Project  Patterns `yaml:"project"`
	Branch   Patterns `yaml:"branch"`
	Action   Patterns `yaml:"action"`
	Result   Patterns `yaml:"result"`
	Job      Patterns `yaml:"job"`
}

// Matcher is a compiled match and exclude block. It is immutable and safe for concurrent use.
type Matcher struct {
	match   []field // listed fields of match:, in evaluation order; none = every report
	exclude []field // listed fields of exclude:; none = exclude nothing
}

// Compile checks and compiles a route's match and optional exclude block. The error lists
// every problem (errors.Join), each naming its key, e.g. `exclude.project: bad glob "[abc":
// unterminated [`. A nil or empty match matches every report; a nil or empty exclude excludes
// nothing; a field with no patterns counts as not listed.
func Compile(match, exclude *Spec) (*Matcher, error) {
	m := &Matcher{}
	var errs []error
	m.match, errs = compileBlock("match", match, errs)
	m.exclude, errs = compileBlock("exclude", exclude, errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

func compileBlock(name string, s *Spec, errs []error) ([]field, []error) {
	if s == nil {
		return nil, errs
	}
	var fields []field
	for _, k := range evalOrder {
		pats := *s.field(k.key)
		if len(pats) == 0 {
			continue
		}
		f, ferrs := compileField(name, k.key, k.kind, pats)
		errs = append(errs, ferrs...)
		fields = append(fields, f)
	}
	return fields, errs
}

// Match reports whether the route takes the report. It does not allocate.
func (m *Matcher) Match(ev *zuul.Event) bool {
	return allHold(m.match, ev) && (len(m.exclude) == 0 || !allHold(m.exclude, ev))
}

func allHold(fields []field, ev *zuul.Event) bool {
	for i := range fields {
		if !fields[i].holds(ev) {
			return false
		}
	}
	return true
}

// MayMatch reports whether the route can take reports of this tenant and pipeline: its match
// block's tenant and pipeline fields hold, whatever the other fields say. The reconciler
// uses it to decide which pipelines to read back from zuul-web.
func (m *Matcher) MayMatch(tenant, pipeline string) bool {
	ev := zuul.Event{Tenant: tenant, Pipeline: pipeline}
	for i := range m.match {
		f := &m.match[i]
		if (f.kind == fTenant || f.kind == fPipeline) && !f.holds(&ev) {
			return false
		}
	}
	return true
}
