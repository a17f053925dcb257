package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/tools/internal/procs"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

type result struct {
	faults       []*fault
	stories      []*story
	end          time.Time
	quiet        time.Duration
	published    int // reports (sequence numbers) sent
	acked        int // with a successful PUBACK
	noSubscriber int // PUBACK "no matching subscribers" (0x10) and never acknowledged otherwise
	noSubInStore int
	unacked      int // no PUBACK at all
	unackedStore int
	otherRC      map[int]int
	inStream     int // unique report ids of this run in the stream
	streamMsgs   int
	duplicates   int // ids stored more than once
	missing      []sent
	incidents    int
	writes       int
	stall        time.Duration
	stallFrom    time.Time
	stallTo      time.Time
	stallFaults  []*fault
	streams      []string
	violations   []string
	logErrors    []string
}

// check reads the stream and the page and records the findings.
func (h *harness) check(ctx context.Context, js jetstream.JetStream, led *ledger, stories []*story, faults []*fault, stall *stallMeter, quiet time.Duration, end time.Time) (*result, error) {
	res := &result{faults: faults, stories: stories, end: end, quiet: quiet, otherRC: map[int]int{}}
	if quiet < 0 {
		h.findings.add(true, "the work did not settle within %s after publishing stopped (outbox pending %d)", h.o.quiesce, stall.pending())
	}
	stored, msgs, err := readStream(ctx, js, led.tag)
	if err != nil {
		return nil, err
	}
	res.streamMsgs = msgs
	for _, n := range stored {
		if n > 1 {
			res.duplicates++
		}
	}
	res.inStream = len(stored)

	// Per sequence number: the best PUBACK any of its publishes got.
	type outcome struct {
		first sent
		best  int
	}
	bySeq := map[int]*outcome{}
	for _, s := range led.snapshot() {
		o := bySeq[s.seq]
		if o == nil {
			o = &outcome{first: s, best: s.rc}
			bySeq[s.seq] = o
		}
		if rank(s.rc) < rank(o.best) {
			o.best, o.first = s.rc, s
		}
	}
	res.published = len(bySeq)
	for seq, o := range bySeq {
		_, in := stored[seq]
		switch {
		case o.best == 0:
			res.acked++
			if !in {
				res.missing = append(res.missing, o.first)
			}
		case o.best == 0x10:
			res.noSubscriber++
			if in {
				res.noSubInStore++
			}
		case o.best == -1:
			res.unacked++
			if in {
				res.unackedStore++
			}
		default:
			res.otherRC[o.best]++
		}
	}
	sort.Slice(res.missing, func(i, j int) bool { return res.missing[i].seq < res.missing[j].seq })
	if n := len(res.missing); n > 0 {
		h.findings.add(true, "%d reports acknowledged by the broker (PUBACK success) are not in the stream", n)
	}
	if res.noSubscriber > 0 {
		h.findings.add(false, "%d reports lost by the broker (PUBACK 0x10 no matching subscribers: the shared subscription across a mosquitto restart, before a replica subscribed again); not the bridge's loss", res.noSubscriber)
	}

	h.checkPage(res, stories, faults)

	res.stall, res.stallFrom, res.stallTo = stall.longest, stall.from, stall.to
	var longestFault time.Duration
	for _, f := range faults {
		if !f.end.IsZero() && f.start.Before(res.stallTo) && f.end.After(res.stallFrom) {
			res.stallFaults = append(res.stallFaults, f)
			longestFault = max(longestFault, f.duration())
		}
	}
	// An item whose writer died waits for the route's pin to expire (1.5 x the ack wait of
	// 10 s) after the fault, and an item retried through an outage for its next attempt
	// (the outbox's backoff, capped at 30 s): a stall may outlast its fault by that much.
	if allowed := longestFault + 45*time.Second; res.stall > allowed {
		h.findings.add(true, "the status page work stalled for %s (%s to %s), longer than the faults during it allow (%s)",
			res.stall.Round(100*time.Millisecond), h.clock.at(res.stallFrom), h.clock.at(res.stallTo), allowed.Round(time.Second))
	}

	res.streams = streamReplicas(ctx, js)
	for _, s := range res.streams {
		if strings.HasSuffix(s, " R1") {
			h.findings.add(false, "JetStream %s in a 3-node cluster: the bridge's state there is unavailable while its one node is down", s)
		}
	}
	res.violations = h.page.fake.Violations()
	if len(res.violations) > 0 {
		h.findings.add(true, "%d requests or answers of the status page violate its spec (first: %s)", len(res.violations), res.violations[0])
	}
	res.logErrors = h.logErrors()
	return res, nil
}

// readStream counts, per sequence number of this run, the messages in the stream.
func readStream(ctx context.Context, js jetstream.JetStream, tag uint32) (map[int]int, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var last uint64
	for {
		s, err := js.Stream(ctx, streamName)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = s.Info(ctx); err == nil {
				last = info.State.LastSeq
				break
			}
		}
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("stream info: %w", err)
		}
		time.Sleep(time.Second)
	}
	cons, err := js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, 0, err
	}
	prefix := fmt.Sprintf("%08x", tag)
	out := map[int]int{}
	msgs := 0
	var seen uint64
	for seen < last {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			return nil, 0, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err == nil {
				seen = md.Sequence.Stream
			}
			msgs++
			id := m.Headers().Get("Nats-Msg-Id")
			if len(id) >= 32 && strings.HasPrefix(id, prefix) {
				if v, err := strconv.ParseInt(id[8:32], 16, 64); err == nil {
					out[int(v)]++
				}
			}
		}
		if batch.Error() != nil && ctx.Err() != nil {
			return nil, 0, batch.Error()
		}
	}
	return out, msgs, nil
}

// checkPage compares every project's incidents with its story.
func (h *harness) checkPage(res *result, stories []*story, faults []*fault) {
	incs := h.page.fake.Incidents()
	res.incidents = len(incs)
	res.writes = len(h.page.writeTimes())
	for _, st := range stories {
		var mine []statuspagefake.Incident
		for _, inc := range incs {
			if strings.Contains(inc.DisplayName, st.project+" (") {
				mine = append(mine, inc)
			}
		}
		known := true
		for _, g := range st.given {
			known = known && g
		}
		// Expected from the story: an incident per failure streak, an update per further
		// failure of the streak and a closing update when a success ends it.
		var streaks []int // failures per streak
		failing := false
		for _, f := range st.fails {
			switch {
			case f && !failing:
				streaks = append(streaks, 1)
			case f:
				streaks[len(streaks)-1]++
			}
			failing = f
		}
		open := 0
		for _, inc := range mine {
			if inc.EndedAt == nil {
				open++
			}
			seen := map[string]int{}
			for _, u := range inc.Updates {
				k := u.DisplayName + "@" + u.CreatedAt.Truncate(time.Second).Format(time.RFC3339)
				seen[k]++
				if seen[k] == 2 {
					h.findings.add(true, "%s: incident %s has the update %q twice", st.project, inc.ID, k)
				}
			}
		}
		if open > 1 {
			h.findings.add(true, "%s: %d incidents open at once", st.project, open)
		}
		for i := range mine {
			for j := i + 1; j < len(mine); j++ {
				if overlap(mine[i], mine[j]) {
					h.findings.add(true, "%s: incidents %s and %s overlap in time (a duplicate incident)", st.project, mine[i].ID, mine[j].ID)
				}
			}
		}
		if !known {
			h.findings.add(false, "%s: a report was never acknowledged by the broker; its story is not known (%s), the state is not checked", st.project, st)
			continue
		}
		if len(mine) != len(streaks) {
			h.findings.add(true, "%s: %d incidents for %d failure streaks (story %s)", st.project, len(mine), len(streaks), st)
		}
		wantOpen := len(st.fails) > 0 && st.fails[len(st.fails)-1]
		if (open == 1) != wantOpen {
			h.findings.add(true, "%s: final state %s, want %s (story %s, last report at %s)", st.project,
				map[bool]string{true: "open", false: "resolved"}[open == 1], map[bool]string{true: "open", false: "resolved"}[wantOpen], st, h.clock.at(st.times[len(st.times)-1]))
		}
		if len(mine) == len(streaks) {
			sort.Slice(mine, func(i, j int) bool {
				return mine[i].BeganAt != nil && mine[j].BeganAt != nil && mine[i].BeganAt.Before(*mine[j].BeganAt)
			})
			for i, inc := range mine {
				want := streaks[i] - 1
				if i < len(streaks)-1 || !wantOpen {
					want++ // the closing update
				}
				if len(inc.Updates) != want {
					h.findings.add(true, "%s: incident %d of %d has %d updates, want %d (story %s)", st.project, i+1, len(mine), len(inc.Updates), want, st)
				}
			}
		}
	}
}

func overlap(a, b statuspagefake.Incident) bool {
	if a.BeganAt == nil || b.BeganAt == nil {
		return false
	}
	endA, endB := time.Unix(1<<40, 0), time.Unix(1<<40, 0)
	if a.EndedAt != nil {
		endA = *a.EndedAt
	}
	if b.EndedAt != nil {
		endB = *b.EndedAt
	}
	return a.BeganAt.Before(endB) && b.BeganAt.Before(endA)
}

// streamReplicas lists every stream with its replicas ("NAME R3").
func streamReplicas(ctx context.Context, js jetstream.JetStream) []string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out []string
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		out = append(out, fmt.Sprintf("%s R%d", info.Config.Name, info.Config.Replicas))
	}
	sort.Strings(out)
	return out
}

// logErrors counts the error and warning lines of the replicas by message.
func (h *harness) logErrors() []string {
	var out []string
	for _, r := range h.replicas {
		f, err := os.Open(r.log)
		if err != nil {
			continue
		}
		counts := map[string]int{}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e struct{ Level, Message string }
			if json.Unmarshal(sc.Bytes(), &e) == nil && (e.Level == "error" || e.Level == "warn") {
				counts[e.Level+": "+e.Message]++
			}
		}
		f.Close()
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%s (%d starts): %dx %s", r.name, r.starts, counts[k], k))
		}
	}
	return out
}

func (h *harness) report(w io.Writer, res *result, stall *stallMeter) {
	c := h.clock
	fmt.Fprintf(w, "\nfaultrun: seed %d, %.1f minutes of faults (%s to %s), %.0f reports/s, page reports every %s\n",
		h.o.seed, h.o.minutes, c.at(c.start), c.at(res.end), h.o.rate, h.o.pageInterval)
	fmt.Fprintf(w, "  %s, nats-server %s x3, 3 bridge replicas ($share/bridges/zuul/#)\n", procs.MosquittoVersion(), natsVersion(h.nats.bin))
	if res.quiet >= 0 {
		fmt.Fprintf(w, "  settled %s after publishing stopped\n", res.quiet.Round(time.Second))
	}
	fmt.Fprintf(w, "\nfaults (%d):\n", len(res.faults))
	counts := map[string]int{}
	for _, f := range res.faults {
		counts[f.kind]++
		endAt := "(not ended)"
		if !f.end.IsZero() {
			endAt = c.at(f.end)
		}
		fmt.Fprintf(w, "  %s - %s  %-27s %-10s %s\n", c.at(f.start), endAt, f.kind, f.target, f.detail)
	}
	var kinds []string
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "  by kind: %s\n", strings.Join(kinds, ", "))

	fmt.Fprintf(w, "\nreports: %d published, %d acknowledged by the broker, %d in the stream (%d messages, %d ids stored twice)\n",
		res.published, res.acked, res.inStream, res.streamMsgs, res.duplicates)
	fmt.Fprintf(w, "  no PUBACK (broker down; Zuul's reporter loses these too): %d, of which %d arrived anyway\n", res.unacked, res.unackedStore)
	fmt.Fprintf(w, "  lost by the broker (PUBACK 0x10, shared subscription across restart): %d, of which %d arrived anyway\n", res.noSubscriber, res.noSubInStore)
	for rc, n := range res.otherRC {
		fmt.Fprintf(w, "  PUBACK reason 0x%02x: %d\n", rc, n)
	}
	fmt.Fprintf(w, "  acknowledged but missing from the stream: %d\n", len(res.missing))
	for i, m := range res.missing {
		if i == 50 {
			fmt.Fprintf(w, "    ... %d more\n", len(res.missing)-50)
			break
		}
		fa := "no fault"
		if m.fault >= 0 && m.fault < len(res.faults) {
			f := res.faults[m.fault]
			fa = fmt.Sprintf("during %s %s from %s", f.kind, f.target, c.at(f.start))
		}
		fmt.Fprintf(w, "    %s sent %s (%s)\n", token(0, m.seq)[8:], c.at(m.at), fa)
	}

	fmt.Fprintf(w, "\nstatus page: %d incidents, %d writes stored; longest stall of its work %s", res.incidents, res.writes, res.stall.Round(100*time.Millisecond))
	if res.stall > 0 {
		fmt.Fprintf(w, " (%s to %s", c.at(res.stallFrom), c.at(res.stallTo))
		if len(res.stallFaults) == 0 {
			fmt.Fprintf(w, ", no fault during it")
		}
		for _, f := range res.stallFaults {
			fmt.Fprintf(w, "; %s %s %s-%s, %s", f.kind, f.target, c.at(f.start), c.at(f.end), f.duration().Round(100*time.Millisecond))
		}
		fmt.Fprintf(w, ")")
	}
	fmt.Fprintln(w)
	if stall.errors > 0 {
		fmt.Fprintf(w, "  outbox sampled %d times, %d failed (last: %s)\n", stall.samples, stall.errors, stall.lastErr)
	}
	for _, st := range res.stories {
		retried := 0
		for _, n := range st.tries {
			if n > 1 {
				retried++
			}
		}
		fmt.Fprintf(w, "  %-12s %s  (%d reports repeated until acknowledged)\n", st.project, st, retried)
	}
	fmt.Fprintf(w, "\nJetStream streams: %s\n", strings.Join(res.streams, ", "))
	if len(res.logErrors) > 0 {
		fmt.Fprintf(w, "\nwarnings and errors in the bridge logs:\n")
		for _, l := range res.logErrors {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	fmt.Fprintf(w, "\nfindings:\n")
	fs := h.findings.list()
	if len(fs) == 0 {
		fmt.Fprintf(w, "  none: every invariant held\n")
	}
	broken := 0
	for _, f := range fs {
		mark := "note  "
		if f.broken {
			mark, broken = "BROKEN", broken+1
		}
		fmt.Fprintf(w, "  %s %s\n", mark, f.text)
	}
	if broken == 0 {
		fmt.Fprintf(w, "result: PASS\n")
	} else {
		fmt.Fprintf(w, "result: FAIL (%d invariants broken)\n", broken)
	}
}

// rank orders the outcomes of a report's publishes: a success beats "no subscribers",
// which beats no answer, which beats an error code.
func rank(rc int) int {
	switch rc {
	case 0:
		return 0
	case 0x10:
		return 1
	case -1:
		return 2
	}
	return 3
}
