package reconcile

import (
	"context"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
)

// seedOnce runs seed for a target until it succeeded once; it is called by Round (under
// the round lock) before the target's pass. Without Options.Ran it does nothing.
func (r *Reconciler) seedOnce(ctx context.Context, t Target) {
	if r.o.Ran == nil || r.seeded[t] {
		return
	}
	if err := r.seed(ctx, t); err != nil {
		if ctx.Err() == nil {
			r.o.Log.Warn().Err(err).Str("target", t.String()).Msg("cannot read the newest buildset of the pipeline; trying again next round")
		}
		return
	}
	if r.seeded == nil {
		r.seeded = map[Target]bool{}
	}
	r.seeded[t] = true
}

// seed tells Ran when the target's newest completed buildset in zuul-web ended, whatever
// the cursor and the lookback: the pass itself reads only what is above the cursor (after
// a restart, possibly nothing for a day), or back to the lookback on a first start, and a
// pipeline that stopped running must show its age from the start, not stay unknown. It
// reads one page of completed buildsets, newest first; DEQUEUED ones do not count as a
// run. When zuul-web has no completed buildset at all, Ran gets the zero time ("never").
func (r *Reconciler) seed(ctx context.Context, t Target) error {
	complete := true
	page, err := r.o.Client.Buildsets(ctx, t.Tenant, zuulweb.Query{Pipeline: t.Pipeline, Complete: &complete, Limit: pageSize})
	if err != nil {
		return err
	}
	found := false
	for i := range page {
		bs := &page[i]
		if bs.Result == "" || bs.Result == "DEQUEUED" {
			continue
		}
		r.observe(t, bs)
		found = true
	}
	if !found && len(page) < pageSize {
		r.o.Ran(t.Tenant, t.Pipeline, time.Time{})
	}
	r.o.Log.Debug().Str("target", t.String()).Int("listed", len(page)).Bool("found", found).Msg("newest completed buildset read")
	return nil
}
