package statuspagefake

import (
	"net/url"
	"slices"
	"testing"
	"time"
)

func TestListWindow(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	put := func(name string, began, ended string) string {
		inc := Incident{DisplayName: name, Phase: &Phase{Generation: 1, Order: 1}}
		if began != "" {
			inc.BeganAt = ptr(ts(began))
		}
		if ended != "" {
			inc.EndedAt = ptr(ts(ended))
		}
		f.PutIncident(inc)
		return name
	}
	put("old-open", "2020-01-01T00:00:00Z", "")
	put("open-in", "2026-11-10T00:00:00Z", "")
	put("open-future", "2026-12-10T00:00:00Z", "")
	put("open-no-begin", "", "")
	put("ended-before", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z")
	put("ended-overlap-start", "2026-10-30T00:00:00Z", "2026-11-02T00:00:00Z")
	put("ended-inside", "2026-11-05T00:00:00Z", "2026-11-06T00:00:00Z")
	put("ended-at-start", "2026-10-30T00:00:00Z", "2026-11-01T00:00:00Z")
	put("ended-no-begin-inside", "", "2026-11-07T00:00:00Z")
	put("ended-no-begin-before", "", "2026-10-07T00:00:00Z")
	put("spans-window", "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z")
	put("after", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z")

	list := func(start, end string) []string {
		var got []wireIncident
		data(t, c.must(200, "GET", "/incidents?start="+url.QueryEscape(start)+"&end="+url.QueryEscape(end), nil), &got)
		var names []string
		for _, inc := range got {
			names = append(names, inc.DisplayName)
		}
		slices.Sort(names)
		return names
	}
	want := []string{"ended-at-start", "ended-inside", "ended-no-begin-inside", "ended-overlap-start", "old-open", "open-in", "spans-window"}
	if got := list("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"); !slices.Equal(got, want) {
		t.Errorf("window:\n got %v\nwant %v", got, want)
	}
	// Plain dates and offsets (sent as %2B) are accepted.
	if got := list("2026-11-01", "2026-11-01T01:00:00+01:00"); !slices.Equal(got, []string{"ended-at-start", "ended-overlap-start", "old-open", "spans-window"}) {
		t.Errorf("date window: %v", got)
	}
	expectViolations(t, f) // a plain date is not a spec date-time

	// Bad parameters.
	c.must(400, "GET", "/incidents", nil)
	c.must(400, "GET", "/incidents?start=2026-11-01T00:00:00Z", nil)
	c.must(400, "GET", "/incidents?start=2026-11-02T00:00:00Z&end=2026-11-01T00:00:00Z", nil)
	c.must(400, "GET", "/incidents?start=2026-11-01T00:00:00+01:00&end=2026-12-01T00:00:00Z", nil) // '+' became a space
	expectViolations(t, f)
}

func TestListOrderIsNotCreationOrder(t *testing.T) {
	f := New(t, Options{})
	c := newClient(t, f)
	var ids []string
	for i := range 3 {
		ids = append(ids, c.createIncident(openIncident(f, time.Date(2026, 11, 21, i, 0, 0, 0, time.UTC).Format(time.RFC3339), 50)))
	}
	var got []wireIncident
	data(t, c.must(200, "GET", "/incidents?start=2026-11-01T00:00:00Z&end=2026-12-01T00:00:00Z", nil), &got)
	if len(got) != 3 || got[0].ID == ids[0] {
		t.Errorf("list in creation order; clients must not rely on it")
	}
}
