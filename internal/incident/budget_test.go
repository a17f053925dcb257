package incident_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// With 100 keys changing state, exactly one write per state change or
// update and no reads on the hot path. Resolve keeps its one read, which guards a
// person's endedAt. The background refresh (driven here between the steps, as Run does
// every IncidentRefreshInterval) costs one GET for all keys.
func TestHundredKeysCallBudget(t *testing.T) {
	const keys = 100
	e := newEnv(t, statuspagefake.Options{}, nil)
	report := func(k, step int, outcome zuul.Outcome) *zuul.Event {
		ev := ev(k*10+step, outcome, hours(24*step).Add(time.Duration(k)*time.Second))
		ev.Project = fmt.Sprintf("SovereignCloudStack/project-%03d", k)
		return ev
	}
	steps := []struct {
		name    string
		outcome zuul.Outcome
		want    []string
	}{
		{"open", zuul.OutcomeFailure, []string{"POST /incidents"}},
		{"update", zuul.OutcomeFailure, []string{"POST /incidents/{id}/updates"}},
		{"resolve", zuul.OutcomeSuccess, []string{"GET /incidents/{id}", "POST /incidents/{id}/updates", "PATCH /incidents/{id}"}},
	}
	for step, st := range steps {
		for k := range keys {
			got := e.calls(func() { e.send(report(k, step, st.outcome)) })
			eqCalls(t, fmt.Sprintf("%s of key %d", st.name, k), got, st.want...)
		}
		eqCalls(t, "background refresh after "+st.name, e.calls(func() { refreshIncidents(t, e) }), "GET /incidents")
		if step == 0 {
			eq(t, "incidents held open", e.m.OpenIncidents(), keys)
		}
	}

	incs := e.incidents()
	eq(t, "incidents", len(incs), keys)
	for _, inc := range incs {
		if inc.EndedAt == nil || len(inc.Updates) != 2 {
			t.Errorf("incident %s: endedAt %v, %d updates; want ended with 2", inc.ID, inc.EndedAt, len(inc.Updates))
		}
	}
	opened, updated, resolved, sup := e.obs.get()
	eq(t, "opened", opened, keys)
	eq(t, "updated", updated, keys)
	eq(t, "resolved", resolved, keys)
	eq(t, "suppressed", len(sup), 0)
	eq(t, "open incidents", e.m.OpenIncidents(), 0)
	if v := e.fake.Violations(); len(v) > 0 {
		t.Errorf("spec violations: %q", v)
	}
}
