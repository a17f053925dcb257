package zuul

import (
	"strings"
	"testing"
)

func TestSplitJobsLargeBuildset(t *testing.T) {
	ev, err := Decode(readSample(t, "periodic-daily_failure_large_buildset.json"))
	if err != nil {
		t.Fatal(err)
	}
	jobs := ev.SplitJobs()
	// 120 builds, 18 of them non-voting: 102 voting builds, one event each.
	if len(jobs) != 102 {
		t.Fatalf("got %d job events, want 102 (the voting builds)", len(jobs))
	}
	count := map[Outcome]int{}
	seen := map[string]bool{}
	for _, je := range jobs {
		count[je.Outcome]++
		if je.ID != ev.ID+"/"+je.Job || seen[je.ID] {
			t.Errorf("job %s: id %q is not the report id + job, or not unique", je.Job, je.ID)
		}
		seen[je.ID] = true
		if len(je.Builds) != 1 || je.Builds[0].JobName != je.Job || je.Result != je.Builds[0].Result {
			t.Errorf("job %s: builds %v, result %q", je.Job, je.Builds, je.Result)
		}
		if v, _ := je.Field("job"); v != je.Job {
			t.Errorf("Field(job) = %q, want %q", v, je.Job)
		}
		if je.Tenant != ev.Tenant || je.BuildsetURL != ev.BuildsetURL || je.Timestamp != ev.Timestamp {
			t.Errorf("job %s: the buildset's fields are not kept", je.Job)
		}
	}
	// 77 SUCCESS, 16 failing (8 FAILURE, 8 POST_FAILURE), 9 SKIPPED (neutral).
	if count[OutcomeSuccess] != 77 || count[OutcomeFailure] != 16 || count[OutcomeNeutral] != 9 {
		t.Errorf("outcomes %v, want 77 success, 16 failure, 9 neutral", count)
	}
	if ev.Job != "" || len(ev.Builds) != 120 {
		t.Error("SplitJobs changed the buildset's event")
	}
	again, _ := Decode(readSample(t, "periodic-daily_failure_large_buildset.json"))
	if a, b := again.SplitJobs()[5].ID, jobs[5].ID; a != b {
		t.Errorf("ids differ between two decodes of one report: %q, %q", a, b)
	}
}

func TestBuildOutcome(t *testing.T) {
	fail := &Event{Outcome: OutcomeFailure}
	ok := &Event{Outcome: OutcomeSuccess}
	neutral := &Event{Outcome: OutcomeNeutral}
	pending := &Event{Outcome: OutcomePending}
	for _, c := range []struct {
		ev     *Event
		result string
		want   Outcome
	}{
		{fail, "SUCCESS", OutcomeSuccess},
		{fail, "FAILURE", OutcomeFailure},
		{fail, "POST_FAILURE", OutcomeFailure},
		{fail, "NODE_FAILURE", OutcomeFailure},
		{fail, "", OutcomeFailure},
		{fail, "SKIPPED", OutcomeNeutral},
		{fail, "CANCELED", OutcomeNeutral},
		{fail, "ABORTED", OutcomeNeutral},
		{fail, "Compliance check failed, see the report", OutcomeFailure},
		{ok, "All standards met", OutcomeSuccess},
		{ok, "SUCCESS", OutcomeSuccess},
		{neutral, "FAILURE", OutcomeNeutral},
		{pending, "", OutcomePending},
	} {
		if got := c.ev.BuildOutcome(&Build{Result: c.result}); got != c.want {
			t.Errorf("buildset %s, build %q: %s, want %s", c.ev.Outcome, c.result, got, c.want)
		}
	}
}

func TestSplitJobsNotFinal(t *testing.T) {
	ev, err := Decode(readSample(t, "periodic-daily_start.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.SplitJobs(); len(got) != 0 {
		t.Errorf("a start report gave %d job events", len(got))
	}
	if !strings.Contains(strings.Join(FieldNames, ","), "job") {
		t.Error("FieldNames lacks job")
	}
}
