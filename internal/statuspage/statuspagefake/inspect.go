package statuspagefake

import (
	"sort"
	"time"
)

// State inspection and manipulation "as a person would via the UI". Times
// are returned in UTC; compare them with Equal.

// Impact is one impact of an incident on a component.
type Impact struct {
	Reference string // component id
	Type      string // impact type id
	Severity  *int
}

// Phase references phases(generation, order).
type Phase struct{ Generation, Order int }

// Incident is a snapshot of a stored incident. Empty strings stand for NULL.
type Incident struct {
	ID, DisplayName, Description string
	BeganAt, EndedAt             *time.Time
	Phase                        *Phase // nil: stored without phase (reads of it answer 500)
	Affects                      []Impact
	Updates                      []Update // sorted by Order
}

// Update is one incident update.
type Update struct {
	Order                    int
	DisplayName, Description string
	CreatedAt                time.Time
}

// Incidents returns a snapshot of all incidents sorted by BeganAt (NULL
// first), then ID.
func (f *Fake) Incidents() []Incident {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Incident, 0, len(f.state.incidents))
	for _, inc := range f.state.incidents {
		out = append(out, snapshot(inc))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].BeganAt, out[j].BeganAt
		switch {
		case a == nil && b != nil:
			return true
		case a != nil && b == nil:
			return false
		case a != nil && !a.Equal(*b):
			return a.Before(*b)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Incident returns a snapshot of one incident.
func (f *Fake) Incident(id string) (Incident, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inc := f.state.incidents[id]
	if inc == nil {
		return Incident{}, false
	}
	return snapshot(inc), true
}

// PutIncident stores inc directly, without any of the API's checks (e.g. a
// maintenance incident, or one without phase), and returns its id: inc.ID
// if it is a valid UUID, else a new one. An existing incident with that id
// is replaced. Unknown phases are not inserted into the phase table.
func (f *Fake) PutIncident(inc Incident) string {
	id, err := parseUUID(inc.ID)
	if err != nil {
		id = newUUID()
	}
	st := &incident{
		id:          id,
		displayName: nullString(inc.DisplayName),
		description: nullString(inc.Description),
		beganAt:     dbTimePtr(inc.BeganAt),
		endedAt:     dbTimePtr(inc.EndedAt),
		updates:     map[int]*update{},
	}
	if inc.Phase != nil {
		st.phase = &Phase{Generation: inc.Phase.Generation, Order: inc.Phase.Order}
	}
	for _, im := range inc.Affects {
		var sev *int
		if im.Severity != nil {
			sev = ptr(*im.Severity)
		}
		st.affects = append(st.affects, impact{component: im.Reference, impactType: im.Type, severity: sev})
	}
	for _, u := range inc.Updates {
		st.updates[u.Order] = &update{order: u.Order, displayName: nullString(u.DisplayName), description: nullString(u.Description), createdAt: dbTime(u.CreatedAt)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.state.incidents, id)
	f.state.insert(st)
	return id
}

// EndIncident sets endedAt as a person would in the UI (phase and impacts
// stay as they are). Unknown ids are ignored.
func (f *Fake) EndIncident(id string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if inc := f.state.incidents[id]; inc != nil {
		inc.endedAt = dbTimePtr(&at)
	}
}

// ComponentID returns the id of the first component with that display
// name, "" if there is none.
func (f *Fake) ComponentID(displayName string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.state.components {
		if c.displayName != nil && *c.displayName == displayName {
			return c.id
		}
	}
	return ""
}

// ImpactTypeID returns the id of the first impact type with that display
// name, "" if there is none.
func (f *Fake) ImpactTypeID(displayName string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, it := range f.state.impactTypes {
		if it.displayName == displayName {
			return it.id
		}
	}
	return ""
}

// snapshot copies inc; call with mu held.
func snapshot(inc *incident) Incident {
	out := Incident{ID: inc.id, DisplayName: deref(inc.displayName), Description: deref(inc.description)}
	out.BeganAt = utcPtr(inc.beganAt)
	out.EndedAt = utcPtr(inc.endedAt)
	if inc.phase != nil {
		out.Phase = &Phase{Generation: inc.phase.Generation, Order: inc.phase.Order}
	}
	for _, im := range inc.affects {
		var sev *int
		if im.severity != nil {
			sev = ptr(*im.severity)
		}
		out.Affects = append(out.Affects, Impact{Reference: im.component, Type: im.impactType, Severity: sev})
	}
	for _, u := range inc.updates {
		out.Updates = append(out.Updates, Update{Order: u.order, DisplayName: deref(u.displayName), Description: deref(u.description), CreatedAt: u.createdAt.UTC()})
	}
	sort.Slice(out.Updates, func(i, j int) bool { return out.Updates[i].Order < out.Updates[j].Order })
	return out
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}
