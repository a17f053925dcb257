package statuspagefake

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestPhaseTrap(t *testing.T) {
	t.Run("no phase breaks reads", func(t *testing.T) {
		f := New(t, Options{})
		c := newClient(t, f)
		ok := c.createIncident(openIncident(f, "2026-11-20T10:00:00Z", 50))
		body := openIncident(f, "2026-11-21T10:00:00Z", 50)
		delete(body, "phase")
		id := c.createIncident(body)
		c.must(500, "GET", "/incidents/"+id, nil)
		c.must(500, "GET", "/incidents?start=2026-11-01T00:00:00Z&end=2026-12-01T00:00:00Z", nil)
		// A window that does not contain it still works.
		c.must(200, "GET", "/incidents?start=2026-11-01T00:00:00Z&end=2026-11-20T12:00:00Z", nil)
		c.must(200, "GET", "/incidents/"+ok, nil)
		// Giving it a phase repairs it.
		c.must(204, "PATCH", "/incidents/"+id, map[string]any{"phase": map[string]int{"generation": 1, "order": 1}})
		c.must(200, "GET", "/incidents/"+id, nil)

		// PutIncident without phase has the same effect.
		bad := f.PutIncident(Incident{DisplayName: "by hand", BeganAt: ptr(ts("2026-11-22T00:00:00Z"))})
		c.must(500, "GET", "/incidents/"+bad, nil)
	})
	t.Run("v1.0.0 phantom phase", func(t *testing.T) {
		f := New(t, Options{Version: V100})
		c := newClient(t, f)
		body := openIncident(f, "2026-11-21T10:00:00Z", 50)
		body["phase"] = map[string]int{"generation": 1, "order": 9}
		id := c.createIncident(body)
		c.must(200, "GET", "/incidents/"+id, nil)
		c.must(500, "GET", "/phases", nil)
	})
	t.Run("v1.0.1 unknown phase", func(t *testing.T) {
		f := New(t, Options{Version: V101})
		c := newClient(t, f)
		body := openIncident(f, "2026-11-21T10:00:00Z", 50)
		body["phase"] = map[string]int{"generation": 1, "order": 9}
		c.must(400, "POST", "/incidents", body)
		id := c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
		c.must(400, "PATCH", "/incidents/"+id, map[string]any{"phase": map[string]int{"generation": 2, "order": 0}})
		c.must(200, "GET", "/phases", nil)
	})
	t.Run("v1.0.1 broken", func(t *testing.T) {
		f := New(t, Options{Version: V101Broken})
		c := newClient(t, f)
		c.must(500, "POST", "/incidents", openIncident(f, "2026-11-21T10:00:00Z", 50))
		body := openIncident(f, "2026-11-21T10:00:00Z", 50)
		delete(body, "phase")
		id := c.createIncident(body)
		c.must(500, "PATCH", "/incidents/"+id, map[string]any{"phase": map[string]int{"generation": 1, "order": 4}})
		c.must(204, "PATCH", "/incidents/"+id, map[string]any{"displayName": "x"})
		if n := len(f.Incidents()); n != 1 {
			t.Errorf("%d incidents", n)
		}
	})
}

func TestEndedAtNotClearable(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	id := c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
	c.must(204, "PATCH", "/incidents/"+id, map[string]any{"endedAt": "2026-11-21T11:00:00Z"})
	// null is ignored: the incident stays ended, the other field is written.
	c.must(204, "PATCH", "/incidents/"+id, map[string]any{"endedAt": nil, "displayName": "reopened?"})
	c.must(400, "PATCH", "/incidents/"+id, map[string]any{"endedAt": nil})
	inc, _ := f.Incident(id)
	if inc.EndedAt == nil || inc.DisplayName != "reopened?" {
		t.Errorf("incident %+v", inc)
	}
	// Only the body is checked: an endedAt before the stored beganAt passes.
	c.must(204, "PATCH", "/incidents/"+id, map[string]any{"endedAt": "2026-11-20T00:00:00Z"})
	// A person ends an incident by hand.
	id2 := c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
	f.EndIncident(id2, ts("2026-11-21T12:00:00Z"))
	var got wireIncident
	data(t, c.must(200, "GET", "/incidents/"+id2, nil), &got)
	if got.EndedAt == nil || *got.EndedAt != "2026-11-21T12:00:00Z" {
		t.Errorf("endedAt %v", got.EndedAt)
	}
}

func TestAffectsByVersion(t *testing.T) {
	for _, v := range []Version{V100, V101} {
		t.Run(string(v), func(t *testing.T) {
			f := New(t, Options{Version: v})
			c := newClient(t, f)
			id := c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
			zuul, conn, perf := f.ComponentID("Zuul"), f.ImpactTypeID("Connectivity Problems"), f.ImpactTypeID("Performance Degradation")
			patch := []map[string]any{
				{"reference": zuul, "type": conn, "severity": 100},
				{"reference": zuul, "type": perf, "severity": 10},
			}
			st, _ := c.do("PATCH", "/incidents/"+id, map[string]any{"affects": patch})
			inc, _ := f.Incident(id)
			sevs := map[string]int{}
			for _, im := range inc.Affects {
				sevs[im.Type] = *im.Severity
			}
			if v == V100 {
				// Append-only, and 404 for an affects-only PATCH.
				if st != 404 || len(sevs) != 2 || sevs[conn] != 50 || sevs[perf] != 10 {
					t.Errorf("status %d, severities %v", st, sevs)
				}
				c.must(204, "PATCH", "/incidents/"+id, map[string]any{"displayName": "periodic failing", "affects": []any{}})
				if inc, _ := f.Incident(id); len(inc.Affects) != 2 {
					t.Errorf("v1.0.0 removed impacts: %+v", inc.Affects)
				}
				return
			}
			if st != 204 || len(sevs) != 2 || sevs[conn] != 100 || sevs[perf] != 10 {
				t.Errorf("status %d, severities %v", st, sevs)
			}
			c.must(204, "PATCH", "/incidents/"+id, map[string]any{"affects": []any{}})
			if inc, _ := f.Incident(id); len(inc.Affects) != 0 {
				t.Errorf("v1.0.1 kept impacts: %+v", inc.Affects)
			}
		})
	}
}

func TestUpdateNumbering(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	id := c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
	post := func() (int, int) {
		st, out := c.do("POST", "/incidents/"+id+"/updates", map[string]string{"displayName": "still failing", "description": "build 2 failed"})
		var o struct{ Order int }
		decode(t, out, &o)
		return st, o.Order
	}
	for want := range 3 {
		if st, n := post(); st != 201 || n != want {
			t.Fatalf("post %d: status %d order %d", want, st, n)
		}
	}
	c.must(204, "DELETE", "/incidents/"+id+"/updates/2", nil)
	if _, n := post(); n != 2 {
		t.Errorf("order after deleting the highest: %d, want 2 (reused)", n)
	}
	f.CollideNextUpdate()
	if st, _ := post(); st != 500 {
		t.Errorf("forced collision: status %d", st)
	}
	if st, n := post(); st != 201 || n != 3 {
		t.Errorf("after collision: %d %d", st, n)
	}
	c.must(400, "POST", "/incidents/"+id+"/updates", map[string]any{})
	c.must(500, "POST", "/incidents/"+newUUID()+"/updates", map[string]string{"displayName": "x"})

	var list []updateOut
	data(t, c.must(200, "GET", "/incidents/"+id+"/updates", nil), &list)
	if len(list) != 4 || list[0].Order != 3 {
		t.Errorf("list %+v (server order is unspecified; fake gives highest first)", list)
	}
	var inc wireIncident
	data(t, c.must(200, "GET", "/incidents/"+id, nil), &inc)
	if fmt.Sprint(inc.Updates) != "[0 1 2 3]" {
		t.Errorf("incident updates %v", inc.Updates)
	}
	c.must(204, "PATCH", "/incidents/"+id+"/updates/0", map[string]string{"description": "first"})
	if got, _ := f.Incident(id); got.Updates[0].Description != "first" || got.Updates[0].CreatedAt.IsZero() {
		t.Errorf("update 0: %+v", got.Updates[0])
	}
	// v1.0.0 cannot delete an incident that has updates.
	c.must(500, "DELETE", "/incidents/"+id, nil)
}

// TestUpdatesRace posts in parallel: every post gets 201 or the collision
// 500, and no order is handed out twice.
func TestUpdatesRace(t *testing.T) {
	f := New(t, Options{Version: V101})
	c := newClient(t, f)
	id := c.createIncident(openIncident(f, "2026-11-21T10:00:00Z", 50))
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 10 {
		wg.Go(func() {
			st, out := c.do("POST", "/incidents/"+id+"/updates", map[string]string{"displayName": "x"})
			mu.Lock()
			defer mu.Unlock()
			statuses[st]++
			_ = out
		})
	}
	wg.Wait()
	t.Logf("statuses of 10 parallel posts: %v", statuses)
	inc, _ := f.Incident(id)
	if statuses[201]+statuses[500] != 10 || len(inc.Updates) != statuses[201] {
		t.Errorf("statuses %v, %d updates stored", statuses, len(inc.Updates))
	}
	for i, u := range inc.Updates {
		if u.Order != i {
			t.Errorf("orders not dense: %+v", inc.Updates)
		}
	}
	// v1.0.1 cascades updates on delete.
	c.must(204, "DELETE", "/incidents/"+id, nil)
}

func TestPutIncidentMaintenance(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	now := time.Now().UTC().Truncate(time.Second)
	id := f.PutIncident(Incident{
		DisplayName: "maintenance", BeganAt: ptr(now.Add(-time.Hour)), EndedAt: ptr(now.Add(time.Hour)),
		Phase:   &Phase{Generation: 1, Order: 0},
		Affects: []Impact{{Reference: f.ComponentID("Zuul"), Type: f.ImpactTypeID("Maintenance"), Severity: intp(0)}},
	})
	var list []wireIncident
	q := fmt.Sprintf("/incidents?start=%s&end=%s", now.Format(time.RFC3339), now.Add(time.Minute).Format(time.RFC3339))
	data(t, c.must(200, "GET", q, nil), &list)
	if len(list) != 1 || list[0].ID != id || *list[0].Affects[0].Severity != 0 {
		t.Errorf("list %+v", list)
	}
	// Maintenance through the API needs endedAt.
	body := openIncident(f, now.Format(time.RFC3339), 0)
	c.must(400, "POST", "/incidents", body)
	body["endedAt"] = now.Add(time.Hour).Format(time.RFC3339)
	c.createIncident(body)
}
