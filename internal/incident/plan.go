package incident

import (
	"context"
	"fmt"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// planWait bounds how long Plan waits for a key that a delivery is working on.
const planWait = 2 * time.Second

// Plan returns the API calls Send would make for ev in the current state, without calling
// the API and without changing state (for the `check` subcommand and the demo). An empty
// result means the report changes nothing on the status page. Calls that only happen
// after a lost answer or an error (look-ups before a repeated write) and the background
// refreshes of Run are not listed. Maintenance is judged from the same cached view Send
// uses, so a suppressed opening plans nothing.
func (s *Sink) Plan(ev *zuul.Event) []string {
	if ev == nil || (ev.Outcome != zuul.OutcomeFailure && ev.Outcome != zuul.OutcomeSuccess) {
		return nil
	}
	hash, vals := keyOf(s.name, s.cfg.Key, ev)
	ks := s.m.lookup(hash)
	var inc *openIncident
	var suppressed bool
	var failStreak, successStreak int
	if ks != nil {
		// Plan is advisory: it waits for the key like Send would, but never for long.
		ctx, cancel := context.WithTimeout(context.Background(), planWait)
		defer cancel()
		if ks.mu.lock(ctx) != nil {
			return []string{"(key busy: a delivery is in progress)"}
		}
		defer ks.mu.unlock()
		if (&apply{ks: ks, ev: ev, rh: reportHash(ev.ID)}).applied() {
			return nil
		}
		if ks.inc != nil {
			c := *ks.inc
			inc = &c
		}
		suppressed, failStreak, successStreak = ks.suppressed, ks.failStreak, ks.successStreak
	}
	comp, typ, sev, phase, endPhase := s.names()
	a := &apply{s: s, ev: ev, vals: vals, ks: &keyState{hash: hash}}
	switch {
	case ev.Outcome == zuul.OutcomeFailure && suppressed:
		return nil
	case ev.Outcome == zuul.OutcomeFailure && inc == nil:
		if failStreak+1 < s.cfg.OpenAfter {
			return nil
		}
		if s.cfg.derived() {
			spec, err := s.cfg.componentFor(ev)
			comp = spec.String()
			if err != nil {
				return []string{fmt.Sprintf("(waits: %v)", err)}
			}
			if s.m.cat.Load() != nil {
				id, _, err := s.eventComponent(ev)
				if err != nil {
					return []string{fmt.Sprintf("(waits until the status page has component %s: %v)", comp, err)}
				}
				comp = fmt.Sprintf("%q (%s)", comp, id)
				if _, ok := s.m.live.Load().underMaintenance(id, s.m.now()); ok {
					return nil // suppressed: the component is under maintenance
				}
			}
		} else if t := s.target.Load(); t != nil {
			if _, ok := s.m.live.Load().underMaintenance(t.componentID, s.m.now()); ok {
				return nil // suppressed: the component is under maintenance
			}
		}
		title, _, _ := a.openTexts(a.when())
		return []string{
			fmt.Sprintf("POST /incidents displayName=%q affects=[%s, %s, severity %s] phase=%s beganAt=%s",
				title, comp, typ, sev, phase, a.when().UTC().Format("2006-01-02T15:04:05Z")),
		}
	case ev.Outcome == zuul.OutcomeFailure:
		name, _, _ := a.updateTexts(inc.runs+1, inc.began, a.when())
		return []string{fmt.Sprintf("POST /incidents/%s/updates displayName=%q", inc.id, name)}
	case inc == nil || successStreak+1 < s.cfg.ResolveAfter:
		return nil
	default:
		out := []string{"GET /incidents/" + inc.id + " (ended by a person?)"}
		if !inc.closingPosted {
			name, _, _ := a.closingTexts(inc.runs, inc.began, "success", a.when())
			out = append(out, fmt.Sprintf("POST /incidents/%s/updates displayName=%q (closing)", inc.id, name))
		}
		return append(out, fmt.Sprintf("PATCH /incidents/%s endedAt=%s phase=%s", inc.id,
			a.when().UTC().Format("2006-01-02T15:04:05Z"), endPhase))
	}
}

// names describes the route's target for Plan: ids after Start, names before.
func (s *Sink) names() (comp, typ, sev, open, resolve string) {
	comp, typ, sev, open, resolve = s.cfg.Component, s.cfg.ImpactType, s.cfg.Severity, s.cfg.OpenPhase, s.cfg.ResolvePhase
	if s.cfg.derived() {
		comp = "component" // set per report by Plan
	} else if comp == "" {
		comp = "component" + labelString(s.cfg.ComponentLabels)
	}
	if resolve == "" {
		resolve = "<last phase>"
	}
	if t := s.target.Load(); t != nil {
		if !s.cfg.derived() {
			comp = fmt.Sprintf("%q (%s)", comp, t.componentID)
		}
		typ = fmt.Sprintf("%q (%s)", typ, t.impactTypeID)
		sev = fmt.Sprint(t.severity)
		open = fmt.Sprintf("%d/%d", t.open.Generation, t.open.Order)
		resolve = fmt.Sprintf("%d/%d", t.resolve.Generation, t.resolve.Order)
	}
	return comp, typ, sev, open, resolve
}
