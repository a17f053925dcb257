package statuspagefake

import (
	"net/http"
	"sort"
	"time"
)

// activeAt decides which incidents count for activelyAffectedBy: without
// ?at= those with endedAt NULL (even if not begun yet); with ?at=T those
// with beganAt < T AND (endedAt > T OR endedAt NULL).
type activeAt struct {
	at *time.Time
}

func (a activeAt) includes(inc *incident) bool {
	if a.at == nil {
		return inc.endedAt == nil
	}
	t := *a.at
	return inc.beganAt != nil && inc.beganAt.Before(t) && (inc.endedAt == nil || inc.endedAt.After(t))
}

// parseAt binds the optional ?at= query parameter.
func parseAt(req *apiRequest) (activeAt, reply, bool) {
	q := req.r.URL.Query()
	if !q.Has("at") {
		return activeAt{}, reply{}, true
	}
	t, err := parseQueryTime(q.Get("at"))
	if err != nil {
		return activeAt{}, messageReply(http.StatusBadRequest, "Invalid format for parameter at: "+err.Error()), false
	}
	return activeAt{at: &t}, reply{}, true
}

// componentImpacts returns the impacts on component id of incidents that
// are active per a, sorted by incident id so output is deterministic.
func (f *Fake) componentImpacts(id string, a activeAt) []impactOut {
	out := []impactOut{}
	for _, inc := range f.state.incidents {
		if !a.includes(inc) {
			continue
		}
		for _, im := range inc.affects {
			if im.component == id {
				out = append(out, impactOut{Reference: inc.id, Type: im.impactType, Severity: im.severity})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Reference != out[j].Reference {
			return out[i].Reference < out[j].Reference
		}
		return out[i].Type < out[j].Type
	})
	return out
}

func (f *Fake) componentOut(c *component, a activeAt) componentOut {
	return componentOut{ID: c.id, DisplayName: c.displayName, Labels: c.labels, ActivelyAffectedBy: f.componentImpacts(c.id, a)}
}

func (f *Fake) listComponents(req *apiRequest) reply {
	a, rep, ok := parseAt(req)
	if !ok {
		return rep
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []componentOut{}
	for _, c := range f.state.components {
		out = append(out, f.componentOut(c, a))
	}
	return dataReply(out)
}

func (f *Fake) getComponent(req *apiRequest) reply {
	a, rep, ok := parseAt(req)
	if !ok {
		return rep
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.state.component(req.id)
	if c == nil {
		return notFound()
	}
	if a.at != nil {
		// The server's SQL for ?at= misses parentheses, impacts of other
		// components come back and gorm fails to assign them.
		for _, other := range f.state.components {
			if other.id != c.id && len(f.componentImpacts(other.id, a)) > 0 {
				return internalError("failed to assign association")
			}
		}
	}
	return dataReply(f.componentOut(c, a))
}

func (f *Fake) createComponent(req *apiRequest) reply {
	var b componentBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.DisplayName == nil && b.Labels == nil {
		return badRequest()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &component{id: newUUID(), displayName: b.DisplayName, labels: map[string]string{}}
	if b.Labels != nil && *b.Labels != nil {
		c.labels = *b.Labels
	}
	f.state.components = append(f.state.components, c)
	return jsonReply(http.StatusCreated, map[string]string{"id": c.id})
}

func (f *Fake) patchComponent(req *apiRequest) reply {
	var b componentBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.DisplayName == nil && b.Labels == nil {
		return badRequest()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.state.component(req.id)
	if c == nil {
		return notFound()
	}
	if b.DisplayName != nil {
		c.displayName = b.DisplayName
	}
	if b.Labels != nil && *b.Labels != nil {
		c.labels = *b.Labels
	}
	return noContent()
}

func (f *Fake) deleteComponent(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.state.components {
		if c.id == req.id {
			if f.state.componentReferenced(c.id) {
				return internalError("violates foreign key constraint on table \"impacts\"")
			}
			f.state.components = append(f.state.components[:i], f.state.components[i+1:]...)
			return noContent()
		}
	}
	return notFound()
}
