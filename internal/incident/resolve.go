package incident

import (
	"context"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// success applies a passing report: it ends the streak of failures and, after
// resolve_after passing reports, resolves the key's open incident.
func (a *apply) success(ctx context.Context) error {
	ks := a.ks
	if ks.suppressed {
		a.log.Info().Msg("success after a hand-ended incident; a new failure will open a new incident")
	}
	ks.suppressed = false
	ks.failStreak = 0
	if ks.inc == nil && ks.pendingCreate {
		if err := a.s.findOpen(ctx, ks); err != nil {
			return err
		}
	}
	if ks.inc == nil {
		return nil
	}
	if !a.ev.Timestamp.IsZero() && a.ev.Timestamp.Before(ks.lastFailure) {
		a.log.Info().Time("report_time", a.ev.Timestamp).Time("last_failure", ks.lastFailure).
			Msg("success older than the last failure; ignored")
		return nil
	}
	streak := ks.successStreak + 1
	if streak < a.s.cfg.ResolveAfter {
		ks.successStreak = streak
		a.log.Info().Int("successes", streak).Int("resolve_after", a.s.cfg.ResolveAfter).Msg("success counted, incident stays open")
		return nil
	}
	return a.resolve(ctx, "success", a.when())
}

// resolve posts the closing update first and then ends the incident. In this order a
// crash in between leaves an open incident whose closing update is recognised on the next
// attempt (by its title, once the entry's closing mark says to look), which then only sends the PATCH; the other order would lose
// the closing update, because an ended incident is never looked at again.
func (a *apply) resolve(ctx context.Context, reason string, endAt time.Time) error {
	ks, m := a.ks, a.s.m
	t, err := a.target()
	if err != nil {
		return err
	}
	cur, still, byUs, err := a.checkOpen(ctx)
	if err != nil {
		return err
	}
	if !still {
		if byUs {
			m.obs.IncidentResolved(a.s.name)
		}
		ks.successStreak = 0
		return nil
	}
	start := time.Now()
	if err := a.fence(ctx); err != nil {
		return err
	}
	// The closing update and the PATCH go out within the fence's hold, so that another
	// replica can rely on its deadline.
	ctx, cancel := a.holdCtx(ctx, start)
	defer cancel()
	inc := ks.inc
	name, body, err := a.closingTexts(inc.runs, inc.began, reason, endAt)
	if err != nil {
		return err
	}
	if !inc.closingPosted && inc.verifyUpdates {
		if _, err := a.findUpdate(ctx, true, name); err != nil {
			return err
		}
	}
	if !inc.closingPosted {
		if _, err := m.client.PostUpdate(ctx, inc.id, statuspage.IncidentUpdate{DisplayName: name, Description: body, CreatedAt: &endAt}); err != nil {
			if statuspage.MaybeApplied(err) {
				inc.verifyUpdates = true
			}
			return err
		}
		inc.closingPosted = true
	}
	if endAt.Before(inc.began) {
		endAt = inc.began
	}
	// The description as read: a person may have edited it.
	inc.endSent = &endAt
	if err := m.client.EndIncident(ctx, inc.id, statuspage.EndIncident{EndedAt: endAt, Phase: t.resolve, Description: cur.Description}); err != nil {
		return err
	}
	ks.setIncident(m, nil)
	ks.successStreak = 0
	a.release(ctx)
	m.obs.IncidentResolved(a.s.name)
	a.log.Info().Str("incident", inc.id).Str("reason", reason).Msg("incident resolved")
	return nil
}
