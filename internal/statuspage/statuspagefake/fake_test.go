package statuspagefake

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProvisioning(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)

	var comps []struct {
		ID                 string            `json:"id"`
		DisplayName        string            `json:"displayName"`
		Labels             map[string]string `json:"labels"`
		ActivelyAffectedBy []impactIn        `json:"activelyAffectedBy"`
	}
	data(t, c.must(200, "GET", "/components", nil), &comps)
	if len(comps) != 11 {
		t.Fatalf("components: %d, want 11", len(comps))
	}
	zuul := comps[9]
	if zuul.DisplayName != "Zuul" || zuul.Labels["system"] != "gx-scs" || zuul.ID != f.ComponentID("Zuul") {
		t.Errorf("Zuul component: %+v", zuul)
	}
	if zuul.ActivelyAffectedBy == nil || len(zuul.ActivelyAffectedBy) != 0 {
		t.Errorf("activelyAffectedBy: %v, want []", zuul.ActivelyAffectedBy)
	}

	var types []struct{ ID, DisplayName string }
	data(t, c.must(200, "GET", "/impacttypes", nil), &types)
	var names []string
	for _, it := range types {
		names = append(names, it.DisplayName)
	}
	if want := []string{"Performance Degradation", "Connectivity Problems", "Maintenance", "Unknown"}; !slices.Equal(names, want) {
		t.Errorf("impact types %v, want %v", names, want)
	}
	if f.ImpactTypeID("Maintenance") == "" || f.ComponentID("nope") != "" {
		t.Error("ImpactTypeID/ComponentID lookups")
	}

	var phases phaseListOut
	data(t, c.must(200, "GET", "/phases", nil), &phases)
	want := []string{"Scheduled", "Investigation ongoing", "Working on it", "Potential fix deployed", "Done"}
	if phases.Generation != 1 || !slices.Equal(phases.Phases, want) {
		t.Errorf("phases %+v", phases)
	}

	var sevs []severityOut
	data(t, c.must(200, "GET", "/severities", nil), &sevs)
	if !slices.Equal(sevs, []severityOut{{"operational", 33}, {"limited", 66}, {"broken", 100}}) {
		t.Errorf("severities %+v", sevs)
	}

	// A new phase generation; the old one stays readable.
	var gen struct{ Generation int }
	decode(t, c.must(201, "POST", "/phases", map[string]any{"phases": []string{"Open", "Closed"}}), &gen)
	if gen.Generation != 2 {
		t.Errorf("generation %d", gen.Generation)
	}
	data(t, c.must(200, "GET", "/phases?generation=1", nil), &phases)
	if phases.Generation != 1 || len(phases.Phases) != 5 {
		t.Errorf("generation 1: %+v", phases)
	}
	c.must(404, "GET", "/phases?generation=3", nil)
}

func TestNoProvision(t *testing.T) {
	f := New(t, Options{NoProvision: true})
	c := newClient(t, f)
	if got := string(c.must(200, "GET", "/components", nil)); got != "{\"data\":[]}\n" {
		t.Errorf("components %q", got)
	}
	var phases phaseListOut
	data(t, c.must(200, "GET", "/phases", nil), &phases)
	if phases.Generation != 0 || len(phases.Phases) != 0 {
		t.Errorf("phases %+v", phases)
	}
}

func TestCreateAndGet(t *testing.T) {
	f := New(t, Options{Location: time.FixedZone("CET", 3600)})
	c := newClient(t, f)
	body := openIncident(f, "2026-11-21T10:00:00.123456789Z", 66)
	body["id"] = "11111111-1111-4111-8111-111111111111" // ignored by the server
	body["description"] = "zuul periodic pipeline fails"
	id := c.createIncident(body)
	if id == "11111111-1111-4111-8111-111111111111" {
		t.Fatal("client id was used")
	}
	if _, err := parseUUID(id); err != nil || id[14] != '4' {
		t.Errorf("id %q is not a v4 uuid", id)
	}

	var got wireIncident
	data(t, c.must(200, "GET", "/incidents/"+id, nil), &got)
	if got.BeganAt == nil || *got.BeganAt != "2026-11-21T11:00:00.123456+01:00" {
		t.Errorf("beganAt %v, want server zone and µs", got.BeganAt)
	}
	if got.EndedAt != nil || got.Phase == nil || *got.Phase != (phaseRef{1, 1}) || len(got.Affects) != 1 ||
		*got.Affects[0].Severity != 66 || got.Updates == nil || len(got.Updates) != 0 {
		t.Errorf("incident %+v", got)
	}
	// The same through GET with an upper-case id (uuid binding is lenient).
	c.must(200, "GET", "/incidents/"+strings.ToUpper(id), nil)

	zuul := f.ComponentID("Zuul")
	affected := func() []impactIn {
		var comp struct{ ActivelyAffectedBy []impactIn }
		data(t, c.must(200, "GET", "/components/"+zuul, nil), &comp)
		return comp.ActivelyAffectedBy
	}
	if a := affected(); len(a) != 1 || a[0].Reference != id {
		t.Errorf("activelyAffectedBy %+v", a)
	}
	c.must(204, "PATCH", "/incidents/"+id, map[string]any{"endedAt": "2026-11-21T11:30:00Z", "phase": map[string]int{"generation": 1, "order": 4}})
	if a := affected(); len(a) != 0 {
		t.Errorf("after end: activelyAffectedBy %+v", a)
	}
	inc, ok := f.Incident(id)
	if !ok || inc.EndedAt == nil || !inc.EndedAt.Equal(ts("2026-11-21T11:30:00Z")) || inc.Phase.Order != 4 {
		t.Errorf("snapshot %+v", inc)
	}
	if len(f.Incidents()) != 1 {
		t.Error("Incidents()")
	}
	// The component still cannot be deleted: an impact references it.
	if st, _ := c.do("DELETE", "/components/"+zuul, nil); st != 500 {
		t.Errorf("delete referenced component: %d", st)
	}
	c.must(204, "DELETE", "/incidents/"+id, nil)
	c.must(404, "GET", "/incidents/"+id, nil)
}

func TestCreateChecks(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	zuul, conn := f.ComponentID("Zuul"), f.ImpactTypeID("Connectivity Problems")
	phase := map[string]int{"generation": 1, "order": 1}
	aff := func(sev int) []map[string]any {
		return []map[string]any{{"reference": zuul, "type": conn, "severity": sev}}
	}
	tests := []struct {
		name      string
		body      any
		ctype     string
		want      int
		violation bool
	}{
		{"empty", map[string]any{}, "application/json", 400, false},
		{"all null", map[string]any{"displayName": nil, "endedAt": nil}, "application/json", 400, true}, // displayName is not nullable
		{"no body", nil, "", 400, false},
		{"ended before began", map[string]any{"beganAt": "2026-01-02T00:00:00Z", "endedAt": "2026-01-01T00:00:00Z", "phase": phase}, "application/json", 400, false},
		// severity range is checked before the maintenance rule
		{"severity 101", map[string]any{"phase": phase, "affects": aff(101)}, "application/json", 400, true},
		{"maintenance without end", map[string]any{"phase": phase, "affects": aff(0)}, "application/json", 400, false},
		{"unknown component", map[string]any{"phase": phase, "affects": []map[string]any{{"reference": newUUID(), "type": conn}}}, "application/json", 500, false},
		{"unknown impact type", map[string]any{"phase": phase, "affects": []map[string]any{{"reference": zuul, "type": newUUID()}}}, "application/json", 500, false},
		{"missing type", map[string]any{"phase": phase, "affects": []map[string]any{{"reference": zuul, "severity": 50}}}, "application/json", 500, false},
		{"time without zone", `{"displayName":"x","beganAt":"2026-11-21T10:00:00","phase":{"generation":1,"order":0}}`, "application/json", 500, true},
		{"invalid json", `{"displayName":`, "application/json", 500, true},
		{"severity as string", `{"phase":{"generation":1,"order":0},"affects":[{"reference":"` + zuul + `","type":"` + conn + `","severity":"high"}]}`, "application/json", 500, true},
		{"text/plain", `{"displayName":"x"}`, "text/plain", 500, true},
		{"form content type binds nothing", `displayName=x`, "application/x-www-form-urlencoded", 400, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			st, out := c.doType("POST", "/incidents", tc.ctype, tc.body)
			if st != tc.want {
				t.Errorf("status %d, want %d (%s)", st, tc.want, out)
			}
			if !strings.Contains(string(out), `"message"`) {
				t.Errorf("body %s is not echo's error", out)
			}
			if tc.violation {
				expectViolations(t, f)
			} else if v := f.Violations(); len(v) > 0 {
				t.Errorf("unexpected violations %v", v)
				f.ResetViolations()
			}
		})
	}
	if n := len(f.Incidents()); n != 0 {
		t.Errorf("%d incidents stored by failed creates", n)
	}
}

func TestRouting(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	st, out := c.do("GET", "/incidents/xyz", nil)
	if st != 400 || !strings.Contains(string(out), "Invalid format for parameter incidentId: error unmarshaling 'xyz' text as *uuid.UUID: invalid UUID length: 3") {
		t.Errorf("malformed uuid: %d %s", st, out)
	}
	expectViolations(t, f)
	c.must(404, "GET", "/incidents/"+newUUID(), nil)
	c.must(404, "PATCH", "/incidents/"+newUUID(), map[string]string{"displayName": "x"})
	c.must(500, "PATCH", "/incidents/00000000-0000-0000-0000-000000000000", map[string]string{"displayName": "x"})
	c.must(400, "GET", "/incidents/"+newUUID()+"/updates/x", nil)
	expectViolations(t, f)
	c.must(404, "GET", "/components/", nil)
	expectViolations(t, f)
	if st, out := c.do("PUT", "/incidents", nil); st != http.StatusMethodNotAllowed || !strings.Contains(string(out), "Method Not Allowed") {
		t.Errorf("PUT: %d %s", st, out)
	}
	expectViolations(t, f)
	c.must(200, "GET", "/openapi.json", nil)
	c.must(200, "GET", "/incidents/"+newUUID()+"/updates", nil)
}

func TestViolationRecorded(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	body := openIncident(f, "2026-11-21T10:00:00Z", 50)
	body["affects"].([]map[string]any)[0]["severity"] = "50"
	c.must(500, "POST", "/incidents", body)
	v := f.Violations()
	if len(v) != 1 || !strings.Contains(v[0], "POST /incidents: request") || !strings.Contains(v[0], "severity") {
		t.Fatalf("violations %q", v)
	}
	f.ResetViolations()

	// Valid requests, including a null endedAt and an unknown field, are not.
	body = openIncident(f, "2026-11-21T10:00:00+02:00", 50)
	body["endedAt"] = nil
	c.createIncident(body)
	if v := f.Violations(); len(v) != 0 {
		t.Fatalf("violations %q", v)
	}
}
