package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuulweb"
)

// target reconciles one target: list, then apply in ascending _id order, then move the
// cursor over the prefix that is done.
//
// The list asks for every buildset above the cursor, running ones included, and without
// exclude_result: zuul-web lists by _id (creation order) but buildsets complete in any
// order, so a running buildset must be seen to hold the cursor below it, and Zuul's
// exclude_result is SQL `result NOT IN (...)`, which would hide exactly those (NULL).
func (r *Reconciler) target(ctx context.Context, t Target) (stats, error) {
	var st stats
	cursor, have, err := r.o.Store.Cursor(ctx, t.Tenant, t.Pipeline)
	if err != nil {
		return st, err
	}
	now := r.o.Now()
	horizon := now.Add(-r.o.Lookback)
	entries, err := r.list(ctx, t, cursor, have, horizon)
	if err != nil {
		return st, err
	}
	st.listed = len(entries)
	slices.SortFunc(entries, func(a, b zuulweb.Buildset) int { return cmp.Compare(a.ID, b.ID) })

	next, blocked := cursor, false
	done := func(id int64) {
		if !blocked && id > next {
			next = id
		}
	}
	defer func() {
		// Save what is done even when a later buildset failed: it is not re-read.
		if next > cursor || !have && next > 0 {
			if err := r.o.Store.SetCursor(ctx, t.Tenant, t.Pipeline, next); err != nil {
				r.o.Log.Warn().Err(err).Str("target", t.String()).Msg("cursor not saved; the next round re-reads")
			}
			st.cursorFrom, st.cursorTo = cursor, next
		}
	}()
	for i := range entries {
		bs := &entries[i]
		if have && bs.ID <= cursor {
			continue
		}
		at := when(bs)
		old := !at.IsZero() && at.Before(horizon)
		switch {
		case bs.Result == "" && old:
			// Zuul drops a database write after three attempts; such a row never gets a result.
			st.abandoned++
			r.o.Log.Warn().Str("target", t.String()).Str("buildset", bs.UUID).Time("triggered", at).
				Msg("buildset still without result after the lookback window; no longer waiting for it")
			done(bs.ID)
		case bs.Result == "":
			// Running, or MQTT was published before the database got the result: next round.
			st.pending++
			blocked = true
		case !have && old:
			st.old++
			done(bs.ID)
		case bs.Result == "DEQUEUED":
			// Not a report: the item was dequeued or reset (a new buildset follows).
			st.dequeued++
			done(bs.ID)
		default:
			r.observe(t, bs)
			if err := r.apply(ctx, t, bs, &st); err != nil {
				return st, err
			}
			done(bs.ID)
		}
	}
	return st, nil
}

// list reads the buildsets above the cursor, or on a first start those back to the
// horizon, newest first with keyset paging.
func (r *Reconciler) list(ctx context.Context, t Target, cursor int64, have bool, horizon time.Time) ([]zuulweb.Buildset, error) {
	q := zuulweb.Query{Pipeline: t.Pipeline, Limit: pageSize}
	if have {
		q.IdxMin = cursor + 1
	}
	var all []zuulweb.Buildset
	for {
		page, err := r.o.Client.Buildsets(ctx, t.Tenant, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < pageSize {
			return all, nil
		}
		last := &page[len(page)-1]
		if at := when(last); !have && !at.IsZero() && at.Before(horizon) {
			return all, nil // ids grow with time: the rest is older still
		}
		if last.ID <= 1 || q.IdxMax != 0 && last.ID > q.IdxMax {
			return all, nil // a server that ignores idx_max must not loop us forever
		}
		q.IdxMax = last.ID - 1
	}
}

// apply submits one completed buildset unless some source applied it before.
func (r *Reconciler) apply(ctx context.Context, t Target, bs *zuulweb.Buildset, st *stats) error {
	id := bs.UUID + "-" + bs.Result // zuulweb.ToEvent's ID, known before the detail is read
	seen, err := r.o.Store.Seen(ctx, id)
	if err != nil {
		return err
	}
	if seen {
		st.seen++
		return nil
	}
	detail, err := r.o.Client.Buildset(ctx, t.Tenant, bs.UUID)
	if err != nil {
		return err
	}
	ev, err := zuulweb.ToEvent(t.Tenant, detail)
	if err != nil {
		return fmt.Errorf("buildset %s: %w", bs.UUID, err)
	}
	if ev.ID != id { // the result changed between list and detail (dependency cycles)
		if seen, err := r.o.Store.Seen(ctx, ev.ID); err != nil || seen {
			if seen {
				st.seen++
			}
			return err
		}
	}
	// Only a failure is "recovered": its MQTT report is missing. A success was never sent
	// over MQTT at SCS (failure-only reporters); it is the resolve signal, not a recovery.
	ev.Recovered = ev.Outcome == zuul.OutcomeFailure
	if err := r.o.Submit(ctx, ev); err != nil {
		return fmt.Errorf("submit %s: %w", ev.ID, err)
	}
	if err := r.o.Store.MarkSeen(ctx, ev.ID); err != nil {
		return err
	}
	st.submitted++
	r.o.Metrics.reports.WithLabelValues(t.Tenant, t.Pipeline, string(ev.Outcome)).Inc()
	l := r.o.Log.Info()
	if ev.Recovered {
		st.recovered++
		r.o.Metrics.recovered.WithLabelValues(t.Tenant, t.Pipeline).Inc()
		l = r.o.Log.Warn()
	}
	l.Str("tenant", t.Tenant).Str("pipeline", ev.Pipeline).Str("project", ev.Project).
		Str("buildset", ev.BuildsetUUID).Str("result", ev.Result).Bool("recovered", ev.Recovered).
		Msg("report found in zuul-web only, submitted")
	return nil
}

func (r *Reconciler) observe(t Target, bs *zuulweb.Buildset) {
	at := bs.LastBuildEndTime.Time
	if at.IsZero() {
		at = when(bs)
	}
	if !at.IsZero() {
		r.o.Metrics.newest.observe(t, at)
		if r.o.Ran != nil {
			r.o.Ran(t.Tenant, t.Pipeline, at)
		}
	}
}

// when is a buildset's trigger time, or the nearest time zuul-web has.
func when(bs *zuulweb.Buildset) time.Time {
	for _, t := range []time.Time{bs.EventTimestamp.Time, bs.FirstBuildStartTime.Time, bs.LastBuildEndTime.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
