package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

func sampleBytes(t *testing.T, name string) []byte {
	b := samples.Get(name)
	if b == nil {
		t.Fatalf("no sample %s", name)
	}
	return b
}

// TestStatusPageLifecycleAcrossRestarts: failure, failure, success of a periodic pipeline
// mapped to the component "Zuul" become exactly one incident, updated once, ended with the
// last phase and a closing update; the bridge restarts between the reports, and a
// redelivered report changes nothing. The bridge knows its incidents from the key-value
// bucket: the texts carry no marker.
func TestStatusPageLifecycleAcrossRestarts(t *testing.T) {
	t.Parallel()
	const token = "e2e-bearer-token-not-for-logs"
	h := newHarness(t, harnessOptions{JetStream: true, ClientID: "e2e-statuspage",
		StatusPage: &statuspagefake.Options{Version: statuspagefake.V100, Token: token}, Rules: `routes:
  - name: capi-nightly
    match:
      pipeline: periodic-daily
      project: SovereignCloudStack/k8s-cluster-api-provider
    statuspage:
      component: Zuul
`})
	fake := h.fake
	h.env["BRIDGE_STATUSPAGE_TOKEN_FILE"] = h.file("token", token+"\n")
	// A killed process holds its route's pin for 1.5 x this: the restarted one takes over
	// within 3 s.
	h.env["BRIDGE_STATUSPAGE_OUTBOX_ACK_WAIT"] = "2s"
	fail1 := sampleBytes(t, "periodic-daily_failure_mixed.json")
	fail2 := bytes.Replace(fail1, []byte(`"uuid": "22799888a7ae82e51b19a6124a096841"`), []byte(`"uuid": "33799888a7ae82e51b19a6124a096841"`), 1)
	fail2 = bytes.Replace(fail2, []byte(`"timestamp": 1736828395.1898394`), []byte(`"timestamp": 1736829000.5`), 1)
	success := sampleBytes(t, "periodic-daily_success.json")

	var outputs []string
	run := func(payload []byte, done func() bool, what string) {
		p := h.start()
		h.publish(payload)
		waitFor(t, 30*time.Second, what, done)
		waitFor(t, 30*time.Second, "the report acknowledged", func() bool { return p.metric(t, "zuul_bridge_reports_acked_total") >= 1 })
		p.kill(t) // a restart between every report
		outputs = append(outputs, p.out.String())
	}
	incidents := func() []statuspagefake.Incident { return fake.Incidents() }

	run(fail1, func() bool { return len(incidents()) == 1 }, "incident opened")
	run(fail2, func() bool { return len(incidents()) == 1 && len(incidents()[0].Updates) == 1 }, "incident updated")
	run(fail2, func() bool { return true }, "redelivered failure handled") // the same report again
	run(success, func() bool { return len(incidents()) == 1 && incidents()[0].EndedAt != nil }, "incident resolved")

	got := incidents()
	if len(got) != 1 {
		t.Fatalf("%d incidents, want exactly 1", len(got))
	}
	inc := got[0]
	if inc.Phase == nil || inc.Phase.Order != 4 || inc.Phase.Generation != 1 {
		t.Errorf("phase %+v, want the last phase (Done, order 4)", inc.Phase)
	}
	if len(inc.Updates) != 2 || inc.Updates[0].DisplayName != "Still failing" || inc.Updates[1].DisplayName != "Resolved" {
		t.Fatalf("updates %+v, want one 'Still failing' and the closing 'Resolved'", inc.Updates)
	}
	texts := []string{inc.DisplayName, inc.Description, inc.Updates[0].Description, inc.Updates[1].Description}
	for _, text := range texts {
		if strings.Contains(text, "\n") || strings.Contains(text, "capi-nightly") || strings.Contains(text, "zuul-bridge") ||
			strings.Contains(text, "automatically") {
			t.Errorf("machine text in public text %q", text)
		}
	}
	if !strings.Contains(inc.Updates[0].Description, "2 nights in a row") {
		t.Errorf("update %q does not count the nights", inc.Updates[0].Description)
	}
	if len(inc.Affects) != 1 || inc.Affects[0].Reference != fake.ComponentID("Zuul") || inc.BeganAt == nil || inc.BeganAt.Unix() != 1736828395 {
		t.Errorf("incident %+v", inc)
	}
	for _, r := range fake.Requests() {
		if r.Method != "GET" && !r.Authorized {
			t.Errorf("%s %s without the bearer token", r.Method, r.Path)
		}
	}
	for _, out := range outputs {
		if strings.Contains(out, token) {
			t.Fatal("the token appears in the bridge's output")
		}
	}
}

// TestTwoReplicasOneIncidentPerKey: two bridges share the subscription ($share) and the
// incident key bucket; the failing reports of one key land on both, and every key still
// gets exactly one incident.
func TestTwoReplicasOneIncidentPerKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withStatusPage(""))
	fake := h.fake
	procs := h.replicas()
	projects := []string{"o/a", "o/b", "o/c", "o/d", "o/e", "o/f"}
	first := failuresOfProjects(t, projects...)
	second := failuresOfProjects(t, projects...)
	for i := range second { // a second run of each key: another buildset
		second[i] = bytes.Replace(second[i], []byte(`"uuid": "0000000000000000000000000`), []byte(`"uuid": "1111111111111111111111111`), 1)
	}
	var all [][]byte
	for i := range first {
		all = append(all, first[i], second[i])
	}
	h.publish(all...)
	waitFor(t, 60*time.Second, "every report settled on one of the replicas", func() bool { return ackedBy(t, procs) == float64(len(all)) })
	if a, b := procs[0].metric(t, "zuul_bridge_reports_acked_total"), procs[1].metric(t, "zuul_bridge_reports_acked_total"); a == 0 || b == 0 {
		t.Logf("the broker gave all reports to one replica (%v/%v): the test shows less than it could", a, b)
	}
	// With JetStream the reports are acknowledged once stored in the outbox; the
	// incidents follow from the outbox worker.
	waitFor(t, 60*time.Second, "the outbox applied", func() bool {
		n := 0
		for _, inc := range fake.Incidents() {
			n += 1 + len(inc.Updates)
		}
		return n >= len(all)
	})
	incs := fake.Incidents()
	if len(incs) != len(projects) {
		t.Fatalf("%d incidents for %d keys", len(incs), len(projects))
	}
	for _, inc := range incs {
		if len(inc.Updates) != 1 {
			t.Errorf("incident %q has %d updates, want 1 (the second run)", inc.DisplayName, len(inc.Updates))
		}
	}
}
