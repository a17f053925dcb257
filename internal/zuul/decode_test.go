package zuul

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeSamples covers every sample Zuul payload.
func TestDecodeSamples(t *testing.T) {
	// action..result are compared always, also when empty (the tag has no branch, a
	// periodic item no change); id and buildsetURL where set (nil: not compared);
	// failedJobs where not nil (an empty slice: no failed job).
	type want struct {
		action, pipeline, project, branch, change, result string
		outcome                                           Outcome
		id                                                *string
		builds                                            int
		failedJobs                                        []string
		buildsetURL                                       *string
	}
	ptr := func(s string) *string { return &s }
	const capi, standards = "SovereignCloudStack/k8s-cluster-api-provider", "SovereignCloudStack/standards"
	cases := map[string]want{
		"periodic-daily_start.json": {action: "start", pipeline: "periodic-daily", project: capi, branch: "main",
			outcome: OutcomePending, id: ptr("f3b0f9b6286add0f5315387704d3c1f1-start-e756696c192909fbdb537f189e5142ee"), builds: 1},
		"periodic-daily_success.json": {action: "success", pipeline: "periodic-daily", project: capi, branch: "main", result: "SUCCESS",
			outcome: OutcomeSuccess, id: ptr("e756696c192909fbdb537f189e5142ee-SUCCESS"), builds: 1, failedJobs: []string{},
			buildsetURL: ptr("https://zuul.sovereignit.cloud/t/scs/buildset/e756696c192909fbdb537f189e5142ee")},
		"periodic-daily_failure_mixed.json": {action: "failure", pipeline: "periodic-daily", project: capi, branch: "main", result: "FAILURE", outcome: OutcomeFailure,
			id: ptr("22799888a7ae82e51b19a6124a096841-FAILURE"), builds: 3,
			failedJobs:  []string{"k8s-cluster-api-provider-e2e-conformance", "k8s-cluster-api-provider-scs-compliance-1.27"},
			buildsetURL: ptr("https://zuul.sovereignit.cloud/t/scs/buildset/22799888a7ae82e51b19a6124a096841")},
		"periodic-hourly_post_failure.json": {action: "failure", pipeline: "periodic-hourly", project: standards, branch: "main", result: "FAILURE",
			outcome: OutcomeFailure, builds: 1, failedJobs: []string{"scs-check-scs2-main"}},
		"periodic-daily_timed_out.json": {action: "failure", pipeline: "periodic-daily", project: standards, branch: "main", result: "FAILURE",
			outcome: OutcomeFailure, builds: 4, failedJobs: []string{"scs-check-kaas1"}},
		"check_failure_pr.json": {action: "failure", pipeline: "check", project: capi, branch: "main", change: "812", result: "FAILURE", outcome: OutcomeFailure, builds: 3,
			failedJobs: []string{"scs-tox-linters", "k8s-cluster-api-provider-docs-lint"}},
		"gate_success_pr.json": {action: "success", pipeline: "gate", project: capi, branch: "main", change: "815", result: "SUCCESS",
			outcome: OutcomeSuccess, builds: 3, failedJobs: []string{}},
		"check_merge_conflict.json": {action: "merge-conflict", pipeline: "check", project: capi, branch: "main", change: "817",
			result: "MERGE_CONFLICT", outcome: OutcomeFailure},
		"check_dequeue.json": {action: "dequeue", pipeline: "check", project: capi, branch: "main", change: "818", result: "DEQUEUED", outcome: OutcomeNeutral},
		"check_enqueue.json": {action: "enqueue", pipeline: "check", project: capi, branch: "main", change: "822", outcome: OutcomePending},
		"post_success_artifacts.json": {action: "success", pipeline: "post", project: capi, branch: "main", result: "SUCCESS",
			outcome: OutcomeSuccess, builds: 2, failedJobs: []string{}},
		"tag_ref_success.json": {action: "success", pipeline: "tag", project: capi, branch: "", result: "SUCCESS",
			outcome: OutcomeSuccess, builds: 1, failedJobs: []string{}},
		"periodic-daily_config_error_via_failure_reporter.json": {action: "failure", pipeline: "periodic-daily", project: capi, branch: "main",
			result: "CONFIG_ERROR", outcome: OutcomeFailure},
		"periodic-daily_no_jobs_branch_with_slash.json": {action: "no-jobs", pipeline: "periodic-daily", project: capi, branch: "maintained/v6.x",
			result: "NO_JOBS", outcome: OutcomeNeutral},
		"legacy_zuul-4.6_periodic_failure.json": {action: "failure", pipeline: "periodic-daily", project: capi, branch: "main", result: "FAILURE",
			outcome: OutcomeFailure, builds: 2, failedJobs: []string{"k8s-cluster-api-provider-e2e-conformance"},
			buildsetURL: ptr("https://zuul.scs.community/t/scs/buildset/b83807797ad96f47f865d89248578e7e")},
		"periodic-daily_failure_large_buildset.json": {action: "failure", pipeline: "periodic-daily", project: standards, branch: "main",
			result: "FAILURE", outcome: OutcomeFailure, builds: 120},
	}
	files, err := filepath.Glob(filepath.Join("..", "samples", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(cases) {
		t.Fatalf("%d samples, %d cases: every sample needs a case", len(files), len(cases))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			w, ok := cases[name]
			if !ok {
				t.Fatalf("no case for %s", name)
			}
			ev, err := Decode(readSample(t, name))
			if err != nil {
				t.Fatal(err)
			}
			check := func(field, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			check("action", ev.Action, w.action)
			check("pipeline", ev.Pipeline, w.pipeline)
			check("project", ev.Project, w.project)
			check("branch", ev.Branch, w.branch)
			check("change", ev.Change, w.change)
			check("result", ev.Result, w.result)
			if w.id != nil {
				check("id", ev.ID, *w.id)
			}
			if w.buildsetURL != nil {
				check("buildsetURL", ev.BuildsetURL, *w.buildsetURL)
			}
			if ev.Outcome != w.outcome {
				t.Errorf("outcome = %q, want %q", ev.Outcome, w.outcome)
			}
			if len(ev.Builds) != w.builds {
				t.Errorf("builds = %d, want %d", len(ev.Builds), w.builds)
			}
			if w.failedJobs != nil {
				var got []string
				for _, b := range ev.FailedBuilds() {
					got = append(got, b.JobName)
				}
				if strings.Join(got, ",") != strings.Join(w.failedJobs, ",") {
					t.Errorf("failed jobs = %v, want %v", got, w.failedJobs)
				}
			}
			if ev.ID == "" || ev.Tenant != "scs" || ev.Timestamp.IsZero() {
				t.Errorf("id %q tenant %q timestamp %v", ev.ID, ev.Tenant, ev.Timestamp)
			}
			again, err := Decode(readSample(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if again.ID != ev.ID {
				t.Errorf("identity not stable: %s vs %s", again.ID, ev.ID)
			}
		})
	}
}

// Zuul < 3.16: no item uuid and no buildset.result, so the identity is a hash.
func TestLegacyIdentityDiffersPerReport(t *testing.T) {
	a := []byte(strings.Replace(string(readSample(t, "legacy_zuul-4.6_periodic_failure.json")), `"result": "FAILURE", "builds"`, `"builds"`, 1))
	b := []byte(strings.Replace(string(a), `"timestamp": 1736828731.5020006`, `"timestamp": 1736915131.5020006`, 1))
	ea, _ := Decode(a)
	eb, _ := Decode(b)
	if ea.ID == eb.ID || !strings.HasPrefix(ea.ID, "h") {
		t.Fatalf("legacy ids %q %q: want distinct hashed ids", ea.ID, eb.ID)
	}
}

func TestTimestamp(t *testing.T) {
	ev, err := Decode(readSample(t, "periodic-daily_failure_mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 1, 14, 4, 19, 55, 189839400, time.UTC)
	if d := ev.Timestamp.Sub(want); d < -time.Microsecond || d > time.Microsecond {
		t.Fatalf("timestamp %v, want %v", ev.Timestamp, want)
	}
	if ev.Builds[0].StartTime.IsZero() || ev.Builds[0].LogURL == "" {
		t.Fatalf("build fields not decoded: %+v", ev.Builds[0])
	}
}

// TestDecodeConstructed covers the format tables beyond the samples: every type `change`
// can have, nulls, missing keys of old versions, unknown keys, old payloads without
// buildset.result, free-text results.
func TestDecodeConstructed(t *testing.T) {
	const base = `"tenant": "t", "pipeline": "periodic-daily", "project": "o/p"`
	cases := []struct {
		name    string
		payload string
		outcome Outcome
		change  string
		check   func(*testing.T, *Event)
	}{
		{"3.1 minimal success", `{"action": "success", ` + base + `, "branch": "main", "change": "", "buildset": {"uuid": null, "builds": [{"job_name": "j", "voting": true, "uuid": "u1", "start_time": 1.5, "end_time": 2.5, "log_url": null, "result": "SUCCESS"}]}}`, OutcomeSuccess, "", nil},
		{"3.1 failure without result", `{"action": "failure", ` + base + `, "buildset": {"builds": []}}`, OutcomeFailure, "", nil},
		{"change int", `{"action": "failure", ` + base + `, "change": 812, "buildset": {"result": "FAILURE", "builds": []}}`, OutcomeFailure, "812", nil},
		{"change string", `{"action": "failure", ` + base + `, "change": "937281", "patchset": "4", "buildset": {"result": "FAILURE"}}`, OutcomeFailure, "937281", nil},
		{"change null", `{"action": "failure", ` + base + `, "change": null, "buildset": {"result": "FAILURE"}}`, OutcomeFailure, "", nil},
		{"nulls everywhere", `{"timestamp": null, "action": "failure", ` + base + `, "zuul_ref": null, "owner": null, "change_url": null, "commit_id": null, "trigger_time": null, "buildset": {"uuid": "b", "result": "FAILURE", "builds": [{"job_name": "j", "voting": true, "uuid": null, "start_time": null, "end_time": null, "log_url": null, "web_url": null, "result": null}]}}`, OutcomeFailure, "", func(t *testing.T, ev *Event) {
			if len(ev.FailedBuilds()) != 1 {
				t.Error("a build with null result in a final report counts as failed")
			}
		}},
		{"unknown keys", `{"action": "success", ` + base + `, "queue": "", "future": {"x": [1, 2]}, "changes": [{"topic": null}], "buildset": {"result": "SUCCESS", "new": 1, "builds": [{"job_name": "j", "voting": true, "returned_data": {"a": {"b": [1]}}, "result": "SUCCESS", "extra": true}]}}`, OutcomeSuccess, "", nil},
		{"free text failure message", `{"action": "failure", ` + base + `, "buildset": {"result": "FAILURE", "builds": [{"job_name": "j", "voting": false, "result": "DOCS LINT FAILED (non-blocking)"}]}}`, OutcomeFailure, "", func(t *testing.T, ev *Event) {
			if len(ev.FailedBuilds()) != 1 {
				t.Error("free-text result is a failure")
			}
		}},
		{"disabled, voting decides", `{"action": "disabled", ` + base + `, "buildset": {"builds": [{"job_name": "a", "voting": true, "result": "SUCCESS"}, {"job_name": "b", "voting": false, "result": "FAILURE"}]}}`, OutcomeSuccess, "", nil},
		{"disabled, all skipped", `{"action": "disabled", ` + base + `, "buildset": {"builds": [{"job_name": "a", "voting": true, "result": "SKIPPED"}]}}`, OutcomeFailure, "", nil},
		{"old dequeue", `{"action": "dequeue", ` + base + `, "buildset": {"result": null, "builds": []}}`, OutcomeNeutral, "", nil},
		{"start with result is still pending", `{"action": "start", ` + base + `, "buildset": {"result": "FAILURE", "builds": []}}`, OutcomePending, "", nil},
		{"quoted timestamps", `{"timestamp": "1524801056.2545864", "action": "failure", ` + base + `, "buildset": {"result": "ERROR"}}`, OutcomeFailure, "", func(t *testing.T, ev *Event) {
			if ev.Timestamp.Unix() != 1524801056 {
				t.Errorf("timestamp %v", ev.Timestamp)
			}
		}},
		{"merge failure 3.x", `{"action": "merge-failure", ` + base + `, "buildset": {"builds": []}}`, OutcomeFailure, "", nil},
		{"relative web_url gives no buildset url", `{"action": "failure", ` + base + `, "buildset": {"uuid": "bs", "result": "FAILURE", "builds": [{"job_name": "j", "uuid": "u", "web_url": "build/u", "result": "FAILURE"}]}}`, OutcomeFailure, "", func(t *testing.T, ev *Event) {
			if ev.BuildsetURL != "" {
				t.Errorf("buildset url %q", ev.BuildsetURL)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := Decode([]byte(c.payload))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Outcome != c.outcome {
				t.Errorf("outcome %q, want %q", ev.Outcome, c.outcome)
			}
			if ev.Change != c.change {
				t.Errorf("change %q, want %q", ev.Change, c.change)
			}
			if c.check != nil {
				c.check(t, ev)
			}
		})
	}
}

// withBuildsetResult returns a sample with its buildset.result replaced by the JSON value
// result (the builds keep theirs).
func withBuildsetResult(t testing.TB, sample, result string) []byte {
	t.Helper()
	re := regexp.MustCompile(`("buildset": \{"uuid": "[0-9a-f]+", "result": )"[A-Z_]+"`)
	b := readSample(t, sample)
	if len(re.FindAllIndex(b, -1)) != 1 {
		t.Fatalf("%s: no single buildset result to replace", sample)
	}
	return re.ReplaceAll(b, []byte("${1}"+result))
}

// TestDecodeFinalWithoutResult: a final report whose buildset.result is null (or "") says
// nothing by its result, so its action decides, and a failure action is a failure
// (WIRE-FORMAT.md §6: any buildset result other than SUCCESS is a failure for alerting).
// Read as a success, it would resolve the incident that the failure should open. The
// config-error and merge-conflict reports carry no builds: only the action is left.
func TestDecodeFinalWithoutResult(t *testing.T) {
	for _, c := range []struct {
		sample, result string
	}{
		{"periodic-daily_failure_mixed.json", `null`},
		{"periodic-daily_failure_mixed.json", `""`},
		{"periodic-daily_config_error_via_failure_reporter.json", `null`},
		{"periodic-daily_config_error_via_failure_reporter.json", `""`},
		{"check_merge_conflict.json", `null`},
	} {
		name := strings.TrimSuffix(c.sample, ".json") + " result null"
		if c.result == `""` {
			name = strings.TrimSuffix(c.sample, ".json") + " result empty"
		}
		t.Run(name, func(t *testing.T) {
			ev, err := Decode(withBuildsetResult(t, c.sample, c.result))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Result != "" {
				t.Fatalf("result %q, want none", ev.Result)
			}
			if ev.Outcome != OutcomeFailure {
				t.Errorf("outcome %q, want %q (action %s)", ev.Outcome, OutcomeFailure, ev.Action)
			}
			if r, _ := ev.Field("result"); r != string(OutcomeFailure) {
				t.Errorf("rule field result = %q, want %q", r, OutcomeFailure)
			}
			if !ev.Final() {
				t.Error("not final")
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	const base = `"tenant": "t", "pipeline": "p", "project": "o/p"`
	cases := []struct {
		name, payload, reason, mention string
	}{
		{"empty", ``, ReasonNotJSON, ""},
		{"not json", `hello`, ReasonNotJSON, ""},
		{"truncated", `{"action": "failure", "tenant": "t"`, ReasonNotJSON, ""},
		{"array", `[1, 2]`, ReasonWrongShape, "array"},
		{"string", `"x"`, ReasonWrongShape, "string"},
		{"null", `null`, ReasonWrongShape, "null"},
		{"empty object", `{}`, ReasonMissingField, "action, tenant, pipeline, project, buildset"},
		{"no buildset", `{"action": "failure", ` + base + `}`, ReasonMissingField, "buildset"},
		{"tenant number", `{"action": "failure", "tenant": 5, "pipeline": "p", "project": "x", "buildset": {}}`, ReasonWrongShape, "tenant"},
		{"builds not array", `{"action": "failure", ` + base + `, "buildset": {"builds": {}}}`, ReasonWrongShape, "buildset.builds"},
		{"voting string", `{"action": "failure", ` + base + `, "buildset": {"builds": [{"voting": "yes"}]}}`, ReasonWrongShape, "voting"},
		{"timestamp garbage", `{"timestamp": "yesterday", "action": "failure", ` + base + `, "buildset": {}}`, ReasonWrongShape, "timestamp"},
		{"change object", `{"action": "failure", ` + base + `, "change": {}, "buildset": {}}`, ReasonWrongShape, "change"},
		{"change float", `{"action": "failure", ` + base + `, "change": 1.5, "buildset": {}}`, ReasonWrongShape, "change"},
		{"invalid utf8", "{\"action\": \"fa\xffilure\", " + base + `, "buildset": {}}`, ReasonInvalidUTF8, ""},
		{"deep nesting", `{"action": "failure", ` + base + `, "buildset": {}, "x": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, ReasonNotJSON, "depth"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := Decode([]byte(c.payload))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, %v; want a DecodeError", ev, err)
			}
			if de.Reason != c.reason {
				t.Errorf("reason %q, want %q (%v)", de.Reason, c.reason, err)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("error %q does not mention %q", err, c.mention)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "samples", "*.json"))
	for _, file := range files {
		b, _ := os.ReadFile(file)
		if len(b) < 20000 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error is not a DecodeError with a reason: %v", err)
			}
			return
		}
		if ev.ID == "" || ev.Action == "" || ev.Tenant == "" || ev.Pipeline == "" {
			t.Fatalf("accepted report without identity or routing fields: %+v", ev)
		}
		switch ev.Outcome {
		case OutcomeSuccess, OutcomeFailure, OutcomeNeutral, OutcomePending:
		default:
			t.Fatalf("outcome %q", ev.Outcome)
		}
		again, err := Decode(b)
		if err != nil || again.ID != ev.ID {
			t.Fatalf("decode not deterministic")
		}
	})
}
