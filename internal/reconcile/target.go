package reconcile

import (
	"cmp"
	"context"
	"errors"
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
	pages, err := r.list(ctx, t, cursor, have, horizon)
	if err != nil {
		return st, err
	}

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
	settleBefore := now.Add(-r.o.Settle)
	for pi := len(pages) - 1; pi >= 0; pi-- { // oldest page first
		entries := pages[pi].entries
		if entries == nil && pages[pi].dropped {
			// Not kept in memory while listing (a long backlog): read the page again.
			if entries, err = r.o.Client.Buildsets(ctx, t.Tenant, pages[pi].q); err != nil {
				return st, err
			}
		}
		st.listed += len(entries)
		slices.SortFunc(entries, func(a, b zuulweb.Buildset) int { return cmp.Compare(a.ID, b.ID) })
		for i := range entries {
			if err := r.visit(ctx, t, &entries[i], cursor, have, horizon, settleBefore, &st, done, &blocked); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// visit handles one listed buildset of a target pass.
func (r *Reconciler) visit(ctx context.Context, t Target, bs *zuulweb.Buildset, cursor int64, have bool, horizon, settleBefore time.Time,
	st *stats, done func(int64), blocked *bool) error {
	if have && bs.ID <= cursor {
		return nil
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
		*blocked = true
	case r.o.Settle > 0 && bs.Result != "SUCCESS" && bs.Result != "DEQUEUED" && ended(bs).After(settleBefore):
		// A failure that ended within the settle time: its MQTT report may still be on
		// its way (a broker backlog, a queue); only after that is it recovered here.
		st.settling++
		*blocked = true
	case !have && old:
		st.old++
		done(bs.ID)
	case bs.Result == "DEQUEUED":
		// Not a report: the item was dequeued or reset (a new buildset follows).
		st.dequeued++
		done(bs.ID)
	default:
		r.observe(t, bs)
		err := r.apply(ctx, t, bs, st)
		if errors.Is(err, ErrDeferred) {
			// Another path holds the report; looked at again next round, when it is
			// remembered as applied.
			st.deferred++
			*blocked = true
			return nil
		}
		if err != nil {
			return err
		}
		done(bs.ID)
	}
	return nil
}

// ended is when a buildset's report was due: its last build's end, else its trigger time.
func ended(bs *zuulweb.Buildset) time.Time {
	if t := bs.LastBuildEndTime.Time; !t.IsZero() {
		return t
	}
	return when(bs)
}

// page is one page of a listing: its query, and its entries unless they were dropped to
// bound memory (then the page is read again when its turn comes).
type page struct {
	q       zuulweb.Query
	entries []zuulweb.Buildset
	dropped bool
}

// maxHeld bounds the buildsets a listing keeps in memory. A cursor far behind (a long
// outage) lists many pages; beyond this only their queries are kept, and each page is
// read again when it is processed, so a pass holds one page at a time.
const maxHeld = 500

// list reads the buildsets above the cursor, or on a first start those back to the
// horizon, newest first with keyset paging. The pages come newest first.
func (r *Reconciler) list(ctx context.Context, t Target, cursor int64, have bool, horizon time.Time) ([]page, error) {
	q := zuulweb.Query{Pipeline: t.Pipeline, Limit: pageSize}
	if have {
		q.IdxMin = cursor + 1
	}
	var pages []page
	held := 0
	for {
		entries, err := r.o.Client.Buildsets(ctx, t.Tenant, q)
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			return pages, nil
		}
		pages = append(pages, page{q: q, entries: entries})
		if held += len(entries); held > maxHeld {
			for i := range pages { // from now on only the queries are kept
				pages[i].entries, pages[i].dropped = nil, true
			}
		}
		if len(entries) < pageSize {
			return pages, nil
		}
		last := &entries[len(entries)-1]
		if at := when(last); !have && !at.IsZero() && at.Before(horizon) {
			return pages, nil // ids grow with time: the rest is older still
		}
		if last.ID <= 1 || q.IdxMax != 0 && last.ID > q.IdxMax {
			return pages, nil // a server that ignores idx_max must not loop us forever
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
	if err := r.o.Submit(ctx, ev); errors.Is(err, ErrNotApplied) {
		st.deadLettered++
		r.o.Log.Warn().Err(err).Str("tenant", t.Tenant).Str("pipeline", ev.Pipeline).Str("project", ev.Project).
			Str("buildset", ev.BuildsetUUID).Msg("report found in zuul-web only, dead-lettered: not remembered as applied")
		return nil
	} else if err != nil {
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
