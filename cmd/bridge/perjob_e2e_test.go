package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

// perJobRules: SCS's compliance checks, one job per cloud (scs-check-<cloud>-main), each
// on its own component; the registry check is mapped to Harbor by its labels. Failed
// jobs also go to chat, one message each.
const perJobRules = `routes:
  - name: compliance
    split: jobs
    match:
      pipeline: periodic-daily
      project: SovereignCloudStack/standards
      job: "scs-check-*"
    statuspage:
      component: '{{ .Job | trimPrefix "scs-check-" | trimSuffix "-main" }}'
      components:
        - job: "scs-check-registry*"
          component_labels: {system: gx-scs, idp: ucs}
  - name: compliance-chat
    split: jobs
    match:
      pipeline: periodic-daily
      job: "scs-check-*"
      result: failure
    nats:
      subject: "zuul.compliance.{job}"
`

// standardsBuildset is the large standards sample (120 jobs, 16 failing voting jobs) as
// night n: its own buildset uuid and time; the failing voting jobs at index 9 and 33
// are renamed to scs-check-gx-scs-main and scs-check-registry-main, with the given
// results (the other 14 keep failing under their own names: clouds the status page has
// no component for).
func standardsBuildset(t *testing.T, n int, gxResult, registryResult string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(sampleBytes(t, "periodic-daily_failure_large_buildset.json"), &doc); err != nil {
		t.Fatal(err)
	}
	doc["timestamp"] = doc["timestamp"].(float64) + float64(n-1)*86400
	bs := doc["buildset"].(map[string]any)
	bs["uuid"] = strings.Repeat(string(rune('a'+n)), 32)
	builds := bs["builds"].([]any)
	set := func(i int, job, result string) {
		b := builds[i].(map[string]any)
		if b["voting"] != true || b["result"] == "SUCCESS" {
			t.Fatalf("sample changed: build %d is not a failing voting build", i)
		}
		b["job_name"], b["result"] = job, result
	}
	set(9, "scs-check-gx-scs-main", gxResult)
	set(33, "scs-check-registry-main", registryResult)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPerJobIncidentsEndToEnd: a standards buildset in which the compliance check of
// gx-scs fails opens exactly one incident on gx-scs, in plain words (and one on Harbor
// for the registry check); the 14 other failing jobs name clouds the status page lacks:
// they are reported as unknown names (/readyz, gauge, log) and hold nothing else back.
// Every failed job is one chat message. The next night gx-scs passes: its incident is
// resolved while the registry's keeps failing (an update), after a restart between the
// nights. Redelivered reports change nothing.
func TestPerJobIncidentsEndToEnd(t *testing.T) {
	t.Parallel()
	// The status page fake is provisioned like status.scs.community.
	h := newHarness(t, harnessOptions{JetStream: true, StatusPage: &statuspagefake.Options{}, Rules: perJobRules, ClientID: "perjob",
		// The killed process holds its routes' outbox for 1.5 x this before the restarted one takes over.
		Env: map[string]string{"BRIDGE_STATUSPAGE_OUTBOX_ACK_WAIT": "2s"}})
	fake := h.fake
	chat := collect(t, h.nc, "zuul.compliance.>")
	p := h.start()

	gx, harbor := fake.ComponentID("gx-scs"), fake.ComponentID("Harbor")
	on := func(component string) []statuspagefake.Incident {
		var out []statuspagefake.Incident
		for _, inc := range fake.Incidents() {
			for _, a := range inc.Affects {
				if a.Reference == component {
					out = append(out, inc)
				}
			}
		}
		return out
	}

	night1 := standardsBuildset(t, 1, "FAILURE", "POST_FAILURE")
	topic := topicOf(night1)
	h.publishTo(topic, night1)
	waitFor(t, 30*time.Second, "the gx-scs and Harbor incidents", func() bool { return len(on(gx)) == 1 && len(on(harbor)) == 1 })
	waitFor(t, 30*time.Second, "one chat message per failed job", func() bool { return chat.unique() == 16 })
	inc := on(gx)[0]
	if inc.DisplayName != "SCS compliance check of gx-scs" {
		t.Errorf("title %q", inc.DisplayName)
	}
	if want := "The SCS compliance check of gx-scs (job scs-check-gx-scs-main) started failing on 14 Jan 2025 at 03:25 UTC. Details: https://zuul.sovereignit.cloud/t/scs/build/"; !strings.HasPrefix(inc.Description, want) {
		t.Errorf("description %q, want it to begin %q", inc.Description, want)
	}
	if h := on(harbor)[0]; h.DisplayName != "SCS compliance check of Harbor" || !strings.Contains(h.Description, "it failed in a post-run step") {
		t.Errorf("Harbor incident %q: %q", h.DisplayName, h.Description)
	}
	if n := len(fake.Incidents()); n != 2 {
		t.Errorf("%d incidents, want 2 (gx-scs, Harbor)", n)
	}
	// The clouds the page lacks: reported, their items wait (deferred), nothing else held.
	waitFor(t, 30*time.Second, "the unknown components reported", func() bool {
		_, body := p.get(t, "/readyz")
		return strings.Contains(body, "route compliance: unknown component subject-011") &&
			p.metric(t, `zuul_bridge_statuspage_unknown_names{route="compliance"}`) == 1
	})
	if code, _ := p.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz %d: unknown components must not make the bridge unready", code)
	}
	if !strings.Contains(p.out.String(), "the status page lacks the component of this job") {
		t.Error("the log does not name the missing component")
	}
	waitFor(t, 30*time.Second, "the unknown clouds' items deferred", func() bool {
		return p.metric(t, `zuul_bridge_outbox_items_total{outcome="deferred",route="compliance"}`) >= 14
	})

	// A restart between the nights (SIGKILL): the incidents are found again in the key
	// bucket, not opened twice.
	waitFor(t, 30*time.Second, "night 1 acknowledged", func() bool { return p.metric(t, "zuul_bridge_reports_acked_total") == 1 })
	p.kill(t)
	p = h.start()

	// Night 2: gx-scs passes, the registry still fails; the 14 others too.
	night2 := standardsBuildset(t, 2, "SUCCESS", "FAILURE")
	h.publishTo(topic, night2)
	waitFor(t, 30*time.Second, "the gx-scs incident resolved, Harbor's updated", func() bool {
		g, h := on(gx), on(harbor)
		return len(g) == 1 && g[0].EndedAt != nil && len(h) == 1 && h[0].EndedAt == nil && len(h[0].Updates) == 1
	})
	waitFor(t, 30*time.Second, "chat: the 15 failed jobs of night 2", func() bool { return chat.unique() == 31 })
	g := on(gx)[0]
	if len(g.Updates) != 1 || !strings.Contains(g.Updates[0].Description, "Passing again since 03:25 UTC") {
		t.Errorf("gx-scs closing update %+v", g.Updates)
	}
	if h := on(harbor)[0]; h.Updates[0].DisplayName != "Still failing" || !strings.Contains(h.Updates[0].Description, "2 nights in a row") {
		t.Errorf("Harbor update %+v", h.Updates)
	}

	// Redelivered reports change nothing: no incident, no update, no new message id.
	waitFor(t, 30*time.Second, "night 2 acknowledged", func() bool {
		return p.metric(t, "zuul_bridge_reports_acked_total") == 1
	})
	before := fake.Incidents()
	h.publishTo(topic, night1, night2)
	waitFor(t, 30*time.Second, "the redelivered reports settled", func() bool {
		return p.metric(t, "zuul_bridge_reports_acked_total") == 3
	})
	time.Sleep(time.Second) // what the outbox would apply, it applies at once
	after := fake.Incidents()
	if len(after) != len(before) {
		t.Fatalf("%d incidents after the redelivery, %d before", len(after), len(before))
	}
	for i := range after {
		if len(after[i].Updates) != len(before[i].Updates) || (after[i].EndedAt == nil) != (before[i].EndedAt == nil) {
			t.Errorf("incident %q changed by a redelivery", after[i].DisplayName)
		}
	}
	if n := chat.unique(); n != 31 {
		t.Errorf("%d message ids after the redelivery, want 31", n)
	}
}

// TestCheckShowsJobEvents: `bridge check` lists the job events of a per-job route with
// their ids, subjects, calls and texts; -online resolves each derived component against
// the status page and fails (exit 2) for the clouds it lacks.
func TestCheckShowsJobEvents(t *testing.T) {
	fake := statuspagefake.New(t, statuspagefake.Options{})
	dir := t.TempDir()
	rules, payload := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "night1.json")
	writeFile(t, rules, []byte(perJobRules))
	writeFile(t, payload, standardsBuildset(t, 1, "FAILURE", "POST_FAILURE"))
	for _, online := range []bool{false, true} {
		args := []string{"check", "-rules", rules, payload}
		want := []string{
			"compliance                   line 2    -> statuspage (split: jobs, one event per voting build)",
			"route compliance: job scs-check-gx-scs-main (FAILURE, failure): MATCH",
			"event id: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-FAILURE/scs-check-gx-scs-main",
			`status page: POST /incidents displayName="SCS compliance check of gx-scs"`,
			"nats subject: zuul.compliance.scs-check-gx-scs-main (Nats-Msg-Id bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-FAILURE/scs-check-gx-scs-main/compliance-chat)",
			"route compliance: 86 job events taken that change nothing now",
		}
		code := 0
		if online {
			args = []string{"check", "-online", "-rules", rules, payload}
			want = append(want, "route compliance: every name exists; the component is derived per job",
				`status page: UNKNOWN COMPONENT: statuspage: component: statuspage: the component of this report is not on the status page: job scs-check-subject-011: no component named "subject-011"`)
			code = 2
		}
		cmd := exec.Command(bridgeBin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BRIDGE_STATUSPAGE_URL=" + fake.URL()}
		out, _ := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); got != code {
			t.Errorf("online=%v: exit %d, want %d:\n%s", online, got, code, out)
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("online=%v: output lacks %q:\n%s", online, w, out)
			}
		}
	}
}

// TestPerJobFromZuulWeb: reconciliation feeds the same per-job events as MQTT: a standards
// buildset that exists only in zuul-web opens the gx-scs incident of its failing job, and
// the next buildset, in which that job passes while another cloud's keeps failing,
// resolves it; the other cloud's job (no component on the page) holds nothing back.
func TestPerJobFromZuulWeb(t *testing.T) {
	t.Parallel()
	zw := zuulwebfake.New(zuulwebfake.Options{})
	t.Cleanup(zw.Close)
	zw.AddTenant("scs", "periodic-daily")
	rules := strings.Replace(perJobRules, "    split: jobs\n", "    split: jobs\n    reconcile: true\n", 1)
	h := newHarness(t, harnessOptions{JetStream: true, StatusPage: &statuspagefake.Options{}, Rules: rules, ClientID: "perjob-zw",
		Env: map[string]string{"BRIDGE_ZUUL_URL": zw.URL, "BRIDGE_ZUUL_TENANTS": "scs", "BRIDGE_ZUUL_RECONCILE_INTERVAL": "200ms"}})
	fake := h.fake
	h.start()
	night := func(uuid, gxResult string, at time.Time) {
		// The other cloud keeps failing: the buildset fails either way.
		zw.Add("scs", zuulwebfake.Buildset{UUID: uuid, Pipeline: "periodic-daily", Result: "FAILURE", Message: "Build failed.",
			EventTime: at, FirstBuildStart: at, LastBuildEnd: at.Add(10 * time.Minute),
			Refs: []zuulwebfake.Ref{zuulwebfake.BranchRef("SovereignCloudStack/standards", "main")},
			Builds: []zuulwebfake.Build{
				{JobName: "scs-check-gx-scs-main", Result: gxResult, Voting: true, Start: at, End: at.Add(10 * time.Minute)},
				{JobName: "scs-check-pco-prod1-main", Result: "FAILURE", Voting: true, Start: at, End: at.Add(10 * time.Minute)},
			}})
	}
	gx := fake.ComponentID("gx-scs")
	onGx := func() []statuspagefake.Incident {
		var out []statuspagefake.Incident
		for _, inc := range fake.Incidents() {
			if len(inc.Affects) == 1 && inc.Affects[0].Reference == gx {
				out = append(out, inc)
			}
		}
		return out
	}
	start := time.Now().Add(-3 * time.Hour).UTC()
	night("9e000000000000000000000000000001", "FAILURE", start)
	waitFor(t, 30*time.Second, "the gx-scs incident from zuul-web", func() bool { return len(onGx()) == 1 })
	night("9e000000000000000000000000000002", "SUCCESS", start.Add(time.Hour))
	waitFor(t, 30*time.Second, "the gx-scs incident resolved by the job's pass in zuul-web", func() bool {
		incs := onGx()
		return len(incs) == 1 && incs[0].EndedAt != nil
	})
	if n := len(fake.Incidents()); n != 1 {
		t.Errorf("%d incidents, want only gx-scs's (pco-prod1 has no component)", n)
	}
}
