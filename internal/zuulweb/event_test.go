package zuulweb_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb/zuulwebfake"
)

// TestToEventAgreesWithDecode maps the REST detail of a buildset and decodes the MQTT
// report of the same buildset: identity, outcome and failed builds must agree, or a report
// seen over both paths would be applied twice or differently.
func TestToEventAgreesWithDecode(t *testing.T) {
	mq, err := zuul.Decode(readFile(t, "mqtt-report-periodic-daily-failure.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := fake(t, zuulwebfake.Options{})
	if _, err := f.AddJSON("scs", readFile(t, "buildset-detail.json")); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f.URL, nil)
	bs, err := c.Buildset(context.Background(), "scs", mq.BuildsetUUID)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := zuulweb.ToEvent("scs", bs)
	if err != nil {
		t.Fatal(err)
	}
	same := []struct {
		name      string
		rest, mqt any
	}{
		{"ID", ev.ID, mq.ID},
		{"Outcome", ev.Outcome, mq.Outcome},
		{"Result", ev.Result, mq.Result},
		{"Action", ev.Action, mq.Action},
		{"Tenant", ev.Tenant, mq.Tenant},
		{"Pipeline", ev.Pipeline, mq.Pipeline},
		{"Project", ev.Project, mq.Project},
		{"Branch", ev.Branch, mq.Branch},
		{"Ref", ev.Ref, mq.Ref},
		{"Change", ev.Change, mq.Change},
		{"Patchset", ev.Patchset, mq.Patchset},
		{"ChangeURL", ev.ChangeURL, mq.ChangeURL},
		{"CommitID", ev.CommitID, mq.CommitID},
		{"Message", ev.Message, mq.Message},
		{"ZuulRef", ev.ZuulRef, mq.ZuulRef},
		{"ZuulEventID", ev.ZuulEventID, mq.ZuulEventID},
		{"BuildsetUUID", ev.BuildsetUUID, mq.BuildsetUUID},
		{"TriggerTime (seconds)", ev.TriggerTime.Unix(), mq.TriggerTime.Unix()},
		{"Final", ev.Final(), mq.Final()},
		{"len(Builds)", len(ev.Builds), len(mq.Builds)},
		{"len(FailedBuilds)", len(ev.FailedBuilds()), len(mq.FailedBuilds())},
	}
	for _, s := range same {
		if s.rest != s.mqt {
			t.Errorf("%s: REST %v, MQTT %v", s.name, s.rest, s.mqt)
		}
	}
	for i, b := range ev.Builds {
		m := mq.Builds[i]
		if b.UUID != m.UUID || b.JobName != m.JobName || b.Result != m.Result || b.Voting != m.Voting ||
			b.LogURL != m.LogURL || b.Failed() != m.Failed() ||
			b.StartTime.Unix() != m.StartTime.Unix() || b.EndTime.Unix() != m.EndTime.Unix() {
			t.Errorf("build %d: REST %+v, MQTT %+v", i, b, m)
		}
	}
	if fb := ev.FailedBuilds(); len(fb) != 1 || fb[0].JobName != "scs-check-kaas" {
		t.Errorf("FailedBuilds = %+v", fb)
	}
	if ev.Source != zuul.SourceREST || ev.Recovered {
		t.Errorf("Source %q Recovered %v", ev.Source, ev.Recovered)
	}
	if want := f.URL + "/t/scs/buildset/" + mq.BuildsetUUID; ev.BuildsetURL != want {
		t.Errorf("BuildsetURL %q, want %q", ev.BuildsetURL, want)
	}
	if want := f.URL + "/t/scs/build/" + ev.Builds[0].UUID; ev.Builds[0].WebURL != want {
		t.Errorf("WebURL %q, want %q", ev.Builds[0].WebURL, want)
	}
	var raw map[string]any
	if err := json.Unmarshal(ev.Raw, &raw); err != nil || raw["uuid"] != mq.BuildsetUUID {
		t.Errorf("Raw is not the buildset JSON: %v %s", err, ev.Raw)
	}
}

func TestToEventRetriedBuildsAndResults(t *testing.T) {
	f := fake(t, zuulwebfake.Options{})
	bs := periodic("MERGE_CONFLICT", t0)
	bs.Builds = []zuulwebfake.Build{
		{JobName: "a", Result: "NODE_FAILURE", Retried: true, Voting: true},
		{JobName: "a", Result: "SUCCESS", Voting: true},
	}
	bs = f.Add("scs", bs)
	c := newClient(t, f.URL, nil)
	d, err := c.Buildset(context.Background(), "scs", bs.UUID)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := zuulweb.ToEvent("scs", d)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Builds) != 1 || ev.Builds[0].Result != "SUCCESS" {
		t.Errorf("retried build kept: %+v", ev.Builds)
	}
	if ev.Outcome != zuul.OutcomeFailure || ev.Action != "failure" || ev.ID != bs.UUID+"-MERGE_CONFLICT" {
		t.Errorf("event %s %s %s", ev.Outcome, ev.Action, ev.ID)
	}

	for result, want := range map[string]zuul.Outcome{"SUCCESS": zuul.OutcomeSuccess, "DEQUEUED": zuul.OutcomeNeutral,
		"NO_JOBS": zuul.OutcomeNeutral, "CONFIG_ERROR": zuul.OutcomeFailure, "FAILURE": zuul.OutcomeFailure} {
		ev, err := zuulweb.ToEvent("scs", &zuulweb.Buildset{UUID: "u", Result: result})
		if err != nil || ev.Outcome != want || ev.ID != "u-"+result || ev.Raw == nil {
			t.Errorf("%s: %v %v", result, ev, err)
		}
	}
	if _, err := zuulweb.ToEvent("scs", &zuulweb.Buildset{UUID: "u"}); !errors.Is(err, zuulweb.ErrNoResult) {
		t.Errorf("running buildset: err = %v, want ErrNoResult", err)
	}
}
