package incident

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// ResolveQuiet resolves every incident whose key saw no failure for its route's quiet
// period, and lifts a hand-end suppression after the same time. Run calls it every
// minute; it is exported so that tests (and a `check` run) can drive it with their clock.
func (m *Manager) ResolveQuiet(ctx context.Context) error {
	now := m.now()
	var errs []error
	for _, ks := range m.snapshot() {
		if err := ks.mu.lock(ctx); err != nil {
			return err
		}
		if err := m.quiet(ctx, ks, now); err != nil {
			errs = append(errs, err)
		}
		ks.mu.unlock()
	}
	return errors.Join(errs...)
}

func (m *Manager) quiet(ctx context.Context, ks *keyState, now time.Time) error {
	s := ks.sink
	if s == nil || s.cfg.QuietPeriod <= 0 || now.Sub(ks.lastFailure) < s.cfg.QuietPeriod {
		return nil
	}
	a := &apply{s: s, ks: ks, ev: ks.lastEvent, rh: "quiet", log: s.log.With().Str("incident_key", ks.hash).Logger()}
	if ks.suppressed {
		ks.suppressed = false
		s.log.Info().Msg("quiet period passed after a hand-ended incident; failures open incidents again")
		a.release(ctx) // the shared "do not reopen" entry, if any
	}
	if ks.inc == nil {
		return nil
	}
	// Another replica may have resolved the incident or seen newer failures.
	if err := a.sync(ctx); err != nil {
		return fmt.Errorf("statuspage: route %s: quiet-period check of %s: %w", s.name, ks.hash, err)
	}
	if ks.inc == nil || now.Sub(ks.lastFailure) < s.cfg.QuietPeriod {
		return nil
	}
	if err := a.resolve(ctx, "quiet period", now); err != nil {
		return fmt.Errorf("statuspage: route %s: quiet-period resolve of %s: %w", s.name, ks.hash, err)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// slim keeps a report for later templates without its raw payload.
func slim(ev *zuul.Event) *zuul.Event {
	c := *ev
	c.Raw = nil
	return &c
}
