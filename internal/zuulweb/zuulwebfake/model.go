package zuulwebfake

import (
	"encoding/json"
	"time"
)

// Buildset is a buildset as a test declares it. "" and zero times stand for null, as
// zuul-web's database does: Result "" is a running buildset (or one whose result has not
// been written yet), Message "" a null message.
type Buildset struct {
	ID              int64 // 0: the next id (ids only grow, like the database key)
	UUID            string
	Pipeline        string
	Result          string
	Message         string
	EventID         string
	EventTime       time.Time
	FirstBuildStart time.Time
	LastBuildEnd    time.Time
	Refs            []Ref
	Builds          []Build
	Triggered       bool // add the 10.2+ "triggered" buildset event to the detail
}

// Ref is one ref; Change 0 and "" strings are null.
type Ref struct {
	Project, Branch, Ref, RefURL string
	Change                       int64
	Patchset, OldRev, NewRev     string
}

// Build is one build of a buildset. Result "" is a running build (final null); Retried
// marks a non-final attempt (final false).
type Build struct {
	ID          int64 // 0: the next build id
	UUID        string
	JobName     string
	Result      string
	Voting      bool
	Retried     bool
	Start, End  time.Time
	LogURL      string
	Nodeset     string
	ErrorDetail string
}

// BranchRef is the ref of a periodic (timer) item on a GitHub branch: change, patchset and
// revisions null.
func BranchRef(project, branch string) Ref {
	return Ref{Project: project, Branch: branch, Ref: "refs/heads/" + branch, RefURL: "https://github.com/" + project}
}

// The wire types below reproduce zuul-web's JSON: key order, nulls, ints, bools and the
// naive UTC timestamp format.

type wireBuildset struct {
	ID                  int64       `json:"_id"`
	UUID                string      `json:"uuid"`
	Result              *string     `json:"result"`
	Message             *string     `json:"message"`
	Pipeline            string      `json:"pipeline"`
	EventID             *string     `json:"event_id"`
	EventTimestamp      *string     `json:"event_timestamp"`
	FirstBuildStartTime *string     `json:"first_build_start_time"`
	LastBuildEndTime    *string     `json:"last_build_end_time"`
	Refs                []wireRef   `json:"refs"`
	Builds              []wireBuild `json:"builds,omitempty"`
	Events              []wireEvent `json:"events,omitempty"`
}

type wireRef struct {
	Project  string  `json:"project"`
	Branch   string  `json:"branch"`
	Change   *int64  `json:"change"`
	Patchset *string `json:"patchset"`
	Ref      string  `json:"ref"`
	OldRev   *string `json:"oldrev"`
	NewRev   *string `json:"newrev"`
	RefURL   string  `json:"ref_url"`
}

type wireBuild struct {
	ID          int64             `json:"_id"`
	UUID        string            `json:"uuid"`
	JobName     string            `json:"job_name"`
	Result      *string           `json:"result"`
	Held        *bool             `json:"held"`
	StartTime   *string           `json:"start_time"`
	EndTime     *string           `json:"end_time"`
	Duration    *float64          `json:"duration"`
	Voting      bool              `json:"voting"`
	LogURL      *string           `json:"log_url"`
	Nodeset     *string           `json:"nodeset"`
	ErrorDetail *string           `json:"error_detail"`
	Final       *bool             `json:"final"`
	Artifacts   []json.RawMessage `json:"artifacts"`
	Provides    []json.RawMessage `json:"provides"`
	Ref         wireRef           `json:"ref"`
}

type wireEvent struct {
	EventTime   string `json:"event_time"`
	EventType   string `json:"event_type"`
	Description string `json:"description"`
}

const naive = "2006-01-02T15:04:05"

func nstr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ntime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(naive)
	return &s
}

func sval(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func tval(p *string) time.Time {
	if p == nil {
		return time.Time{}
	}
	t, _ := time.ParseInLocation(naive, *p, time.UTC)
	return t
}

func (r Ref) wire() wireRef {
	w := wireRef{Project: r.Project, Branch: r.Branch, Ref: r.Ref, RefURL: r.RefURL,
		Patchset: nstr(r.Patchset), OldRev: nstr(r.OldRev), NewRev: nstr(r.NewRev)}
	if r.Change != 0 {
		c := r.Change
		w.Change = &c
	}
	return w
}

func (w wireRef) model() Ref {
	r := Ref{Project: w.Project, Branch: w.Branch, Ref: w.Ref, RefURL: w.RefURL,
		Patchset: sval(w.Patchset), OldRev: sval(w.OldRev), NewRev: sval(w.NewRev)}
	if w.Change != nil {
		r.Change = *w.Change
	}
	return r
}

// wire renders the list element (detail false) or the detail of a buildset.
func (bs *Buildset) wire(detail bool) wireBuildset {
	w := wireBuildset{
		ID: bs.ID, UUID: bs.UUID, Result: nstr(bs.Result), Message: nstr(bs.Message),
		Pipeline: bs.Pipeline, EventID: nstr(bs.EventID), EventTimestamp: ntime(bs.EventTime),
		FirstBuildStartTime: ntime(bs.FirstBuildStart), LastBuildEndTime: ntime(bs.LastBuildEnd),
		Refs: make([]wireRef, 0, len(bs.Refs)),
	}
	for _, r := range bs.Refs {
		w.Refs = append(w.Refs, r.wire())
	}
	if !detail {
		return w
	}
	var ref wireRef
	if len(bs.Refs) > 0 {
		ref = bs.Refs[0].wire()
	}
	for _, b := range bs.Builds {
		wb := wireBuild{
			ID: b.ID, UUID: b.UUID, JobName: b.JobName, Result: nstr(b.Result),
			StartTime: ntime(b.Start), EndTime: ntime(b.End), Voting: b.Voting,
			LogURL: nstr(b.LogURL), Nodeset: nstr(b.Nodeset), ErrorDetail: nstr(b.ErrorDetail),
			Artifacts: []json.RawMessage{}, Provides: []json.RawMessage{}, Ref: ref,
		}
		if b.Result != "" { // held, final and duration are null until the build ends
			held, final := false, !b.Retried
			wb.Held, wb.Final = &held, &final
			if !b.Start.IsZero() && !b.End.IsZero() {
				d := b.End.Sub(b.Start).Seconds()
				wb.Duration = &d
			}
		}
		w.Builds = append(w.Builds, wb)
	}
	if bs.Triggered && !bs.EventTime.IsZero() && len(bs.Refs) > 0 {
		r := bs.Refs[0]
		w.Events = []wireEvent{{EventTime: bs.EventTime.UTC().Format(naive), EventType: "triggered",
			Description: "Triggered by Branch " + r.Project + " " + r.Ref + " updated None..None"}}
	}
	return w
}

// model turns a buildset detail as zuul-web serves it (e.g. a rest-samples file) into a
// Buildset.
func (w wireBuildset) model() Buildset {
	bs := Buildset{
		ID: w.ID, UUID: w.UUID, Pipeline: w.Pipeline, Result: sval(w.Result), Message: sval(w.Message),
		EventID: sval(w.EventID), EventTime: tval(w.EventTimestamp),
		FirstBuildStart: tval(w.FirstBuildStartTime), LastBuildEnd: tval(w.LastBuildEndTime),
		Triggered: len(w.Events) > 0,
	}
	for _, r := range w.Refs {
		bs.Refs = append(bs.Refs, r.model())
	}
	for _, b := range w.Builds {
		bs.Builds = append(bs.Builds, Build{
			ID: b.ID, UUID: b.UUID, JobName: b.JobName, Result: sval(b.Result), Voting: b.Voting,
			Retried: b.Final != nil && !*b.Final, Start: tval(b.StartTime), End: tval(b.EndTime),
			LogURL: sval(b.LogURL), Nodeset: sval(b.Nodeset), ErrorDetail: sval(b.ErrorDetail),
		})
	}
	return bs
}
