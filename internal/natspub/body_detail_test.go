package natspub_test

import (
	"encoding/json"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// The NATS message keeps the full detail for chat and alert consumers, whatever the
// status page shows: every failed job, voting and non-voting, with its result code, log
// link and build link, also for a buildset of 120 jobs.
func TestBodyKeepsEveryFailedJob(t *testing.T) {
	subj, err := natspub.CompileSubject("zuul.{tenant}.{pipeline}")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"periodic-daily_failure_mixed.json", "periodic-daily_failure_large_buildset.json", "periodic-hourly_post_failure.json"} {
		ev, err := zuul.Decode(samples.Get(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		msg, err := natspub.NewMessage(ev, "route", subj, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var body natspub.Body
		if err := json.Unmarshal(msg.Data, &body); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want []zuul.Build
		var nonVoting int
		for _, b := range ev.Builds {
			if b.Failed() {
				want = append(want, b)
				if !b.Voting {
					nonVoting++
				}
			}
		}
		if len(want) == 0 || len(body.FailedJobs) != len(want) {
			t.Fatalf("%s: %d failed jobs in the body, want %d (> 0)", name, len(body.FailedJobs), len(want))
		}
		for i, b := range want {
			got := body.FailedJobs[i]
			if got.Name != b.JobName || got.Voting != b.Voting || got.Result != b.Result || got.LogURL != b.LogURL || got.BuildURL != b.WebURL || got.LogURL == "" {
				t.Errorf("%s: failed job %d = %+v, want %s voting=%v %s %s %s", name, i, got, b.JobName, b.Voting, b.Result, b.LogURL, b.WebURL)
			}
		}
		if name != "periodic-hourly_post_failure.json" && nonVoting == 0 {
			t.Errorf("%s: no non-voting failure: the sample no longer shows that they are kept", name)
		}
		if body.BuildsetURL == "" || body.BuildsetURL != ev.BuildsetURL {
			t.Errorf("%s: buildset_url %q", name, body.BuildsetURL)
		}
	}
}
