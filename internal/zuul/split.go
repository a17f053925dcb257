package zuul

import "strings"

// SplitJobs turns a final buildset report into one event per voting build: the event of
// one job, as a route with `split: jobs` sees it. Each is a copy of the buildset's event
// with
//
//   - ID: the report's ID + "/" + the job name, stable like the report's (a redelivery and
//     the zuul-web copy of the buildset give the same IDs), so that every de-duplication
//     (NATS message id, outbox, incident applied set) works per job;
//   - Job: the job name; Builds: that build only (so `job` and upper-case `result`
//     patterns of a route see this job alone);
//   - Result: the build's result; Outcome: from the build (BuildOutcome).
//
// Non-voting builds are left out (they do not make a buildset fail, and a check that
// does not vote is not watched); so are reports that are not final (enqueue, start):
// they have no job results. A buildset whose outcome is neutral (NO_JOBS, DEQUEUED)
// gives neutral job events, which neither open nor resolve anything.
func (e *Event) SplitJobs() []*Event {
	if !e.Final() {
		return nil
	}
	out := make([]*Event, 0, len(e.Builds))
	for i := range e.Builds {
		b := e.Builds[i]
		if !b.Voting || b.JobName == "" {
			continue
		}
		je := *e
		je.ID = e.ID + "/" + b.JobName
		je.Job = b.JobName
		je.Builds = []Build{b}
		je.Result = b.Result
		je.Outcome = e.BuildOutcome(&b)
		out = append(out, &je)
	}
	return out
}

// BuildOutcome is the outcome of one build of this final report, for per-job events:
//
//   - SUCCESS: success.
//   - SKIPPED, CANCELED, ABORTED, RETRY: neutral. The job did not run to a result (a
//     dependency failed, the item was dequeued or re-enqueued), which says nothing about
//     what it checks.
//   - a build of a buildset that is itself neutral (NO_JOBS, DEQUEUED): neutral.
//   - free text (a job's success-message or failure-message replaces the result): success
//     when the buildset succeeded (a voting build cannot have failed then), else failure.
//   - anything else, a missing result included: failure.
func (e *Event) BuildOutcome(b *Build) Outcome {
	if !e.Final() {
		return OutcomePending
	}
	if e.Outcome == OutcomeNeutral {
		return OutcomeNeutral
	}
	switch b.Result {
	case "SUCCESS":
		return OutcomeSuccess
	case "SKIPPED", "CANCELED", "ABORTED", "RETRY":
		return OutcomeNeutral
	}
	if b.Result != "" && !isResultCode(b.Result) && e.Outcome == OutcomeSuccess {
		return OutcomeSuccess
	}
	return OutcomeFailure
}

// isResultCode: an upper-case code like POST_FAILURE, not a job's free-text message.
func isResultCode(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r == '_') }) < 0
}
