package incident

import (
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// The public texts are read by users of SCS services on status.scs.community, whose web
// frontend shows a description or an update as one plain paragraph: line breaks are lost
// and no URL is a link. So every rendered text is made one paragraph and cut to a
// maximum length after rendering, whatever the template and however many jobs failed.
const (
	MaxTitle       = 120 // incident display name
	MaxDescription = 500 // incident description
	MaxUpdateTitle = 80  // incident update display name
	MaxUpdate      = 400 // incident update text
)

// maxJobsNamed bounds the jobs a summary names; maxJobName bounds each name.
const (
	maxJobsNamed = 3
	maxJobName   = 60
)

// templateFuncs are the functions the templates may call, besides Go's built-ins.
var templateFuncs = template.FuncMap{
	"checks":      checksOf,
	"plain":       plainResult,
	"failures":    failureSummary,
	"outcome":     buildsetWords,
	"newFailures": newFailures,
	"when":        whenUTC,
	"clock":       clockUTC,
	"inARow":      inARow,
	"duration":    humanDuration,
	"lower":       strings.ToLower,
	"checkName":   checkName,
	"upperFirst":  upperFirst,
	"jobLink":     jobLink,
	"trimPrefix":  func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix":  func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
}

// checkName names what a job checks, for people: "SCS compliance check" for SCS's
// compliance jobs (scs-check-*, scs-compliance-*), else "check <job>".
func checkName(job string) string {
	if strings.HasPrefix(job, "scs-check-") || strings.HasPrefix(job, "scs-compliance-") {
		return "SCS compliance check"
	}
	if job == "" {
		return "checks"
	}
	return "check " + job
}

// upperFirst makes the first letter upper case: "check e2e" -> "Check e2e".
func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return strings.ToUpper(string(r)) + s[n:]
}

// jobLink is the one link of a per-job text: the build page of the report's (only) job,
// else its log, else the buildset page.
func jobLink(ev *zuul.Event) string {
	if ev == nil {
		return ""
	}
	if ev.Job != "" && len(ev.Builds) == 1 {
		if b := ev.Builds[0]; b.WebURL != "" {
			return b.WebURL
		} else if b.LogURL != "" {
			return b.LogURL
		}
	}
	return ev.BuildsetURL
}

// checksOf names a pipeline for people: "Nightly checks" for periodic-daily, "Hourly
// checks" for periodic-hourly, "Weekly checks" for a weekly one, else "Checks".
func checksOf(pipeline string) string {
	p := strings.ToLower(pipeline)
	switch {
	case strings.Contains(p, "hourly"):
		return "Hourly checks"
	case strings.Contains(p, "daily"), strings.Contains(p, "nightly"):
		return "Nightly checks"
	case strings.Contains(p, "weekly"):
		return "Weekly checks"
	}
	return "Checks"
}

// inARow says how long a run of n failing reports lasts, in the pipeline's rhythm:
// "3 nights in a row", "2 hours in a row", "4 runs in a row".
func inARow(n int, pipeline string) string {
	unit := "runs"
	switch checksOf(pipeline) {
	case "Nightly checks":
		unit = "nights"
	case "Hourly checks":
		unit = "hours"
	case "Weekly checks":
		unit = "weeks"
	}
	return fmt.Sprintf("%d %s in a row", n, unit)
}

// resultWords turns Zuul result codes (of a build or a buildset) into plain words that
// complete "<job> ...".
var resultWords = map[string]string{
	"FAILURE":        "failed",
	"POST_FAILURE":   "failed in a post-run step",
	"TIMED_OUT":      "timed out",
	"RETRY_LIMIT":    "failed on every retry",
	"NODE_FAILURE":   "got no test machine",
	"DISK_FULL":      "ran out of disk space",
	"MERGE_CONFLICT": "could not be merged",
	"MERGE_FAILURE":  "could not be merged",
	"MERGER_FAILURE": "could not be merged",
	"CONFIG_ERROR":   "has an error in its job configuration",
	"ABORTED":        "was aborted",
	"CANCELED":       "was cancelled",
	"LOST":           "was lost",
	"ERROR":          "ended with an error",
	"EXCEPTION":      "ended with an error",
	"SKIPPED":        "was skipped",
	"SUCCESS":        "passed",
	"FAILED":         "failed",
	"failure":        "failed",
}

// plainResult returns the words for a result code; free text (a job's failure-message)
// and unknown codes read as "failed".
func plainResult(code string) string {
	if w, ok := resultWords[code]; ok {
		return w
	}
	return "failed"
}

// buildsetWords says what went wrong with a buildset that names no failed voting job
// (CONFIG_ERROR, MERGE_CONFLICT, ...), completing "started failing on ...: ".
func buildsetWords(code string) string {
	switch code {
	case "CONFIG_ERROR":
		return "the job configuration has an error"
	case "MERGE_CONFLICT", "MERGE_FAILURE", "MERGER_FAILURE":
		return "the code could not be merged"
	case "NODE_FAILURE":
		return "no test machine was available"
	case "TIMED_OUT":
		return "the run timed out"
	case "POST_FAILURE":
		return "a post-run step failed"
	}
	return "the run failed"
}

// failureSummary names at most three failed jobs with what went wrong and counts the
// rest: "e2e timed out, lint failed and 3 more jobs failed". Non-voting jobs are left out
// by the caller (.Failed holds voting jobs only).
func failureSummary(builds []zuul.Build) string {
	if len(builds) == 0 {
		return ""
	}
	var parts []string
	for i, b := range builds {
		if i == maxJobsNamed {
			break
		}
		parts = append(parts, cutRunes(b.JobName, maxJobName)+" "+plainResult(b.Result))
	}
	if rest := len(builds) - len(parts); rest > 0 {
		more := "1 more job failed"
		if rest > 1 {
			more = fmt.Sprintf("%d more jobs failed", rest)
		}
		return strings.Join(parts, ", ") + " and " + more
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// newFailures returns the builds of failed whose job did not fail (voting) in prev.
func newFailures(failed []zuul.Build, prev *zuul.Event) []zuul.Build {
	if prev == nil {
		return failed
	}
	before := map[string]bool{}
	for _, b := range votingFailures(prev) {
		before[b.JobName] = true
	}
	var out []zuul.Build
	for _, b := range failed {
		if !before[b.JobName] {
			out = append(out, b)
		}
	}
	return out
}

// whenUTC: "28 Nov 2026 at 04:12 UTC".
func whenUTC(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format("2 Jan 2006 at 15:04 UTC")
}

// clockUTC: "04:12 UTC" (the status page shows the date of an update next to it).
func clockUTC(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format("15:04 UTC")
}

// humanDuration: "36 hours", "3 days", "45 minutes".
func humanDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 72*time.Hour && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour:
		return plural(int64(d/time.Hour), "hour")
	}
	return plural(int64(d/time.Minute), "minute")
}

// votingFailures are the failed builds that make a buildset fail.
func votingFailures(ev *zuul.Event) []zuul.Build {
	var out []zuul.Build
	for _, b := range ev.FailedBuilds() {
		if b.Voting {
			out = append(out, b)
		}
	}
	return out
}

// paragraph makes one paragraph of a rendered text: every run of white space, line
// breaks included, becomes one space.
func paragraph(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// fit makes one paragraph of s of at most max characters. A longer text is cut at the
// last space before the limit (so that no word is cut in half) and marked by "…"; a link
// at the end, with its label ("Details: https://..."), is kept and the text before it cut.
func fit(s string, max int) string {
	s = strings.ToValidUTF8(paragraph(s), "\uFFFD")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	words := strings.Split(s, " ")
	tail := ""
	if n := len(words); n > 1 && strings.Contains(words[n-1], "://") {
		tail = words[n-1]
		if n > 2 && strings.HasSuffix(words[n-2], ":") {
			tail = words[n-2] + " " + tail
		}
	}
	if tail != "" && utf8.RuneCountInString(tail)+8 <= max/2 {
		head := strings.TrimSuffix(s, " "+tail)
		return cutWords(head, max-utf8.RuneCountInString(tail)-1) + " " + tail
	}
	return cutWords(s, max)
}

// cutWords cuts s to at most max characters at a space, ending in "…".
func cutWords(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	cut := cutRunes(s, max-1)
	if i := strings.LastIndexByte(cut, ' '); i > 0 {
		cut = cut[:i]
	}
	return strings.TrimRight(cut, " ,;:.") + "…"
}

// cutRunes returns at most n characters of s.
func cutRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
