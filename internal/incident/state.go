package incident

import (
	"context"
	"fmt"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// appliedMemory bounds the report hashes remembered per key. Redeliveries come within
// minutes (MQTT session, reconciler window), so a few hundred is plenty.
const appliedMemory = 512

// keyState is everything the bridge knows about one incident key. mu serialises all work
// on the key, including every write to its incident.
type keyState struct {
	mu   chanMutex
	hash string // keyOf: the key's name in memory, in logs and in the key store
	sink *Sink

	applied       *recent // report hashes already applied
	failStreak    int     // consecutive failures counted while no incident is open
	successStreak int     // consecutive successes counted while an incident is open
	// suppressed: a person ended this outage's incident; failures are ignored until a
	// success (or a quiet period without failures) says the outage is over.
	suppressed    bool
	lastFailure   time.Time
	lastEvent     *zuul.Event // the latest failing report, for the quiet-period templates
	pendingCreate bool        // a create may have been stored although we saw no answer
	// pendingOpen is what that create sent, to recognise the incident if it was stored.
	pendingOpen *fingerprint

	// The revision of the key's entry as this replica last
	// wrote or understood it (0 = none), and whether that entry is this replica's claim
	// without an incident id yet.
	kvRev   uint64
	kvClaim bool

	inc *openIncident

	// touched is when the key was last looked up for a report (under Manager.mu); an
	// idle key without anything open is forgotten (evict.go).
	touched time.Time
}

// openIncident is the bridge's open incident of a key.
type openIncident struct {
	id            string
	seq           uint64 // set by setIncident; see RefreshIncidents
	began         time.Time
	runs          int  // failing reports counted into it, 1 = the opening one
	closingPosted bool // the closing update is on the server; only the PATCH is missing
	verifyUpdates bool // an update post may have landed without answer: look before posting
	// endSent is the endedAt of the bridge's closing PATCH once sent (answered or not):
	// an incident found ended at that time was ended by the bridge.
	endSent *time.Time
}

// fingerprint is what an incident the bridge created looks like: its display name and
// beganAt. Used to find it again after a create whose answer was lost.
type fingerprint struct {
	Title string    `json:"title"`
	Began time.Time `json:"began"`
	// Report is the hash of the opening report: applied once the incident is found.
	Report string `json:"report,omitempty"`
}

// matches reports whether an open incident is the one fp describes.
func (fp *fingerprint) matches(title string, began *time.Time, ended *time.Time) bool {
	return fp != nil && ended == nil && title == fp.Title && sameSecond(fp.Began, began)
}

// recent is a bounded set of strings, forgetting the oldest first. It grows as strings
// come, so a key that saw one report costs one entry, not the bound.
type recent struct {
	set  map[string]struct{}
	ring []string
	next int // once the ring is full: the slot to overwrite next
	max  int
}

func newRecent(n int) *recent {
	return &recent{max: n}
}

func (r *recent) has(s string) bool { _, ok := r.set[s]; return ok }

// list returns at most n entries, the newest last.
func (r *recent) list(n int) []string {
	var out []string
	for i := range len(r.ring) {
		if s := r.ring[(r.next+i)%len(r.ring)]; s != "" {
			out = append(out, s)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func (r *recent) add(s string) {
	if s == "" || r.has(s) {
		return
	}
	if r.set == nil {
		r.set = map[string]struct{}{}
	}
	if len(r.ring) < r.max {
		r.ring = append(r.ring, s)
		r.set[s] = struct{}{}
		return
	}
	delete(r.set, r.ring[r.next])
	r.ring[r.next] = s
	r.set[s] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}

// chanMutex is a mutex whose Lock can give up when ctx ends, so that a key stuck on a
// hanging API call does not hold a second delivery of the same key past its deadline.
type chanMutex chan struct{}

func newChanMutex() chanMutex { return make(chanMutex, 1) }

func (c chanMutex) lock(ctx context.Context) error {
	select {
	case c <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("statuspage: waiting for the incident key: %w", context.Cause(ctx))
	}
}

// tryLock takes the lock only if it is free (background work skips busy keys).
func (c chanMutex) tryLock() bool {
	select {
	case c <- struct{}{}:
		return true
	default:
		return false
	}
}

func (c chanMutex) unlock() { <-c }

// setIncident changes the open incident of a key and keeps the manager's gauge right.
func (ks *keyState) setIncident(m *Manager, inc *openIncident) {
	switch {
	case ks.inc == nil && inc != nil:
		m.open.Add(1)
	case ks.inc != nil && inc == nil:
		m.open.Add(-1)
	}
	if inc != nil && inc.seq == 0 {
		inc.seq = m.incSeq.Add(1)
	}
	ks.inc = inc
}
