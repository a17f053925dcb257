package statuspagefake

import (
	"testing"
)

func TestCatalogCRUD(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)

	// Impact types.
	var created struct{ ID string }
	decode(t, c.must(201, "POST", "/impacttypes", map[string]string{"displayName": "Zuul failure", "description": "periodic job"}), &created)
	c.must(500, "POST", "/impacttypes", map[string]string{"description": "no name"})
	c.must(400, "PATCH", "/impacttypes/"+created.ID, map[string]any{})
	c.must(204, "PATCH", "/impacttypes/"+created.ID, map[string]string{"description": "changed"})
	var it impactTypeOut
	data(t, c.must(200, "GET", "/impacttypes/"+created.ID, nil), &it)
	if it.DisplayName != "Zuul failure" || *it.Description != "changed" || f.ImpactTypeID("Zuul failure") != created.ID {
		t.Errorf("impact type %+v", it)
	}
	c.must(204, "DELETE", "/impacttypes/"+created.ID, nil)
	c.must(404, "DELETE", "/impacttypes/"+created.ID, nil)

	// Severities: value is unique, not range-checked; the path names one.
	c.must(204, "POST", "/severities", map[string]any{"displayName": "degraded", "value": 50})
	c.must(400, "POST", "/severities", map[string]any{"displayName": "other", "value": 50})
	var sev severityOut
	data(t, c.must(200, "GET", "/severities/degraded", nil), &sev)
	if sev.Value != 50 {
		t.Errorf("severity %+v", sev)
	}
	c.must(400, "PATCH", "/severities/degraded", map[string]any{"value": 33})
	c.must(204, "PATCH", "/severities/degraded", map[string]any{"value": 55})
	c.must(204, "DELETE", "/severities/degraded", nil)
	c.must(404, "GET", "/severities/degraded", nil)

	// Components.
	decode(t, c.must(201, "POST", "/components", map[string]any{"displayName": "Zuul2", "labels": map[string]string{"system": "gx-scs"}}), &created)
	c.must(500, "POST", "/components", `{"displayName":"x","labels":{"n":1}}`)
	expectViolations(t, f)
	c.must(204, "PATCH", "/components/"+created.ID, map[string]any{"displayName": "Zuul 2"})
	if f.ComponentID("Zuul 2") != created.ID {
		t.Error("component rename")
	}
	c.must(204, "DELETE", "/components/"+created.ID, nil)
	c.must(404, "GET", "/components/"+created.ID, nil)
	c.must(400, "POST", "/phases", map[string]any{"phases": []string{}})
}

func TestComponentAt(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	id := c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
	c.must(204, "PATCH", "/incidents/"+id, map[string]any{"endedAt": "2026-11-21T12:00:00Z"})

	var comps []componentOut
	data(t, c.must(200, "GET", "/components?at=2026-11-21T11:00:00Z", nil), &comps)
	n := 0
	for _, comp := range comps {
		n += len(comp.ActivelyAffectedBy)
	}
	if n != 1 {
		t.Errorf("impacts at 11:00: %d, want 1", n)
	}
	c.must(400, "GET", "/components?at=yesterday", nil)
	expectViolations(t, f)
	// §8.3: the single-component variant breaks when another component had
	// an impact at that time.
	c.must(500, "GET", "/components/"+f.ComponentID("Harbor")+"?at=2026-11-21T11:00:00Z", nil)
	c.must(200, "GET", "/components/"+f.ComponentID("Zuul")+"?at=2026-11-21T11:00:00Z", nil)
}
