package incident

import (
	"fmt"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// PublicTexts are the texts a report puts on the status page, exactly as they are sent.
type PublicTexts struct {
	// Title and Description of the incident a failing report opens.
	Title, Description string
	// UpdateTitle and Update: the update the same report posts as the second failure of
	// an open incident whose first failure had the same failed jobs.
	UpdateTitle, Update string
	// ResolveTitle and Resolve: the closing update a successful report posts, or for a
	// failing report the one its route's quiet period posts (empty without one).
	ResolveTitle, Resolve string
}

// Texts renders what ev puts on the status page through the route's templates, for the
// `check` subcommand and the documentation. A report that is not final, or neutral,
// puts nothing.
func (s *Sink) Texts(ev *zuul.Event) (PublicTexts, error) {
	var out PublicTexts
	if ev == nil || (ev.Outcome != zuul.OutcomeFailure && ev.Outcome != zuul.OutcomeSuccess) {
		return out, nil
	}
	hash, vals := keyOf(s.name, s.cfg.Key, ev)
	a := &apply{s: s, ev: ev, vals: vals, ks: &keyState{hash: hash}}
	ts := a.when()
	var err error
	if ev.Outcome == zuul.OutcomeSuccess {
		out.ResolveTitle, out.Resolve, err = a.closingTexts(1, ts, "success", ts)
		return out, err
	}
	if out.Title, out.Description, err = a.openTexts(ts); err != nil {
		return out, err
	}
	a.ks.lastEvent = ev // the update as the same jobs failing again
	if out.UpdateTitle, out.Update, err = a.updateTexts(2, ts, ts); err != nil {
		return out, err
	}
	if q := s.cfg.QuietPeriod; q > 0 {
		out.ResolveTitle, out.Resolve, err = a.closingTexts(2, ts, "quiet period", ts.Add(q))
	}
	return out, err
}

// openTexts renders the title and description of the incident a report opens.
func (a *apply) openTexts(ts time.Time) (title, desc string, err error) {
	data := a.data(1, time.Time{}, "", ts)
	if title, err = render(a.s.cfg.tmpl.title, data); err != nil {
		return "", "", fmt.Errorf("statuspage: title template: %w", err)
	}
	if desc, err = render(a.s.cfg.tmpl.description, data); err != nil {
		return "", "", fmt.Errorf("statuspage: description template: %w", err)
	}
	return oneLine(title), fit(desc, MaxDescription), nil
}

// updateTexts renders the update a failing report posts as failure number run.
func (a *apply) updateTexts(run int, since, ts time.Time) (name, body string, err error) {
	text, err := render(a.s.cfg.tmpl.update, a.data(run, since, "", ts))
	if err != nil {
		return "", "", fmt.Errorf("statuspage: update template: %w", err)
	}
	name, body = splitUpdate(text)
	return name, body, nil
}

// closingTexts renders the closing update of an incident ended at `at`.
func (a *apply) closingTexts(runs int, since time.Time, reason string, at time.Time) (name, body string, err error) {
	text, err := render(a.s.cfg.tmpl.resolve, a.data(runs, since, reason, at))
	if err != nil {
		return "", "", fmt.Errorf("statuspage: resolve template: %w", err)
	}
	name, body = splitUpdate(text)
	return name, body, nil
}
