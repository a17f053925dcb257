package filter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Explain says in one line why a report does or does not match, for the `check` subcommand:
//
//	pipeline "check" matches none of [periodic-* compliance_check]
//	excluded by exclude.branch "stable/*" (branch "stable/2024.1")
//	matched: pipeline "periodic-daily" by "periodic-*", outcome failure by "failure"
//
// It is not meant for the hot path: it allocates freely.
func (m *Matcher) Explain(ev *zuul.Event) (matched bool, reason string) {
	var fails, holds []string
	for i := range m.match {
		f := &m.match[i]
		if f.holds(ev) {
			pat, val := f.why(ev)
			holds = append(holds, fmt.Sprintf("%s by %q", val, pat))
		} else {
			fails = append(fails, f.whyNot(ev))
		}
	}
	if len(fails) > 0 {
		return false, strings.Join(fails, "; ")
	}
	if len(m.exclude) > 0 {
		if allHold(m.exclude, ev) {
			var by []string
			for i := range m.exclude {
				f := &m.exclude[i]
				pat, val := f.why(ev)
				by = append(by, fmt.Sprintf("exclude.%s %q (%s)", f.key, pat, val))
			}
			return false, "excluded by " + strings.Join(by, " and ")
		}
	}
	reason = "matched: " + strings.Join(holds, ", ")
	if len(holds) == 0 {
		reason = "matched: no match fields, every report matches"
	}
	for i := range m.exclude {
		if f := &m.exclude[i]; !f.holds(ev) {
			reason += "; not excluded: exclude." + f.whyNot(ev)
			break
		}
	}
	return true, reason
}

// why names the pattern that holds for the report and the value it matched. f must hold.
func (f *field) why(ev *zuul.Event) (pattern, value string) {
	switch f.kind {
	case fResult:
		if f.classes.has(ev.Outcome) {
			return string(ev.Outcome), "outcome " + string(ev.Outcome)
		}
		if p, ok := f.set.which(ev.Result, f.raw); ok && ev.Result != "" {
			return p, fmt.Sprintf("result %q", ev.Result)
		}
		for _, b := range ev.Builds {
			if p, ok := f.set.which(b.Result, f.raw); ok && b.Result != "" {
				return p, fmt.Sprintf("build result %q of job %q", b.Result, b.JobName)
			}
		}
	case fJob:
		for _, b := range ev.Builds {
			if p, ok := f.set.which(b.JobName, f.raw); ok {
				return p, fmt.Sprintf("job %q", b.JobName)
			}
		}
	default:
		v := f.value(ev)
		p, _ := f.set.which(v, f.raw)
		return p, fmt.Sprintf("%s %q", f.key, v)
	}
	return "", "?"
}

// whyNot describes a field that does not hold.
func (f *field) whyNot(ev *zuul.Event) string {
	switch f.kind {
	case fResult:
		var rs []string
		for _, b := range ev.Builds {
			if b.Result != "" && !slices.Contains(rs, b.Result) {
				rs = append(rs, b.Result)
			}
		}
		return fmt.Sprintf("result %q (outcome %s, build results %s) matches none of %v",
			ev.Result, ev.Outcome, capList(rs), f.raw)
	case fJob:
		jobs := make([]string, 0, len(ev.Builds))
		for _, b := range ev.Builds {
			jobs = append(jobs, b.JobName)
		}
		return fmt.Sprintf("jobs %s match none of %v", capList(jobs), f.raw)
	}
	return fmt.Sprintf("%s %q matches none of %v", f.key, f.value(ev), f.raw)
}

// capList prints at most 8 items, so a buildset of 120 jobs stays one readable line.
func capList(items []string) string {
	const limit = 8
	if len(items) <= limit {
		return fmt.Sprint(items)
	}
	return fmt.Sprintf("[%s ... %d more]", strings.Join(items[:limit], " "), len(items)-limit)
}
