package statuspagefake

import (
	"net/http"
	"strconv"
)

// Phases, impact types and severities: the small lookup tables.

func (f *Fake) getPhases(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	gen := f.state.currentGeneration()
	if q := req.r.URL.Query().Get("generation"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil {
			return messageReply(http.StatusBadRequest, "Invalid format for parameter generation: "+err.Error())
		}
		if n < 1 {
			return badRequest()
		}
		if n > gen {
			return notFound()
		}
		gen = n
	}
	// A phantom phase row (NULL name) makes the server panic (issue #41).
	if f.state.hasPhantomPhase() {
		return internalError("Internal Server Error")
	}
	var names []string
	for o := 0; ; o++ {
		found := false
		for _, p := range f.state.phases {
			if p.generation == gen && p.order == o {
				names = append(names, *p.name)
				found = true
			}
		}
		if !found {
			break
		}
	}
	if names == nil {
		names = []string{}
	}
	return dataReply(phaseListOut{Generation: gen, Phases: names})
}

func (f *Fake) createPhases(req *apiRequest) reply {
	var b phaseListBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if len(b.Phases) == 0 {
		return badRequest()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	gen := f.state.currentGeneration() + 1
	for i, name := range b.Phases {
		f.state.phases = append(f.state.phases, phaseRow{generation: gen, order: i, name: ptr(name)})
	}
	return jsonReply(http.StatusCreated, map[string]int{"generation": gen})
}

func (f *Fake) listImpactTypes(*apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []impactTypeOut{}
	for _, it := range f.state.impactTypes {
		out = append(out, impactTypeOut{ID: it.id, DisplayName: it.displayName, Description: it.description})
	}
	return dataReply(out)
}

func (f *Fake) createImpactType(req *apiRequest) reply {
	var b impactTypeBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.DisplayName == nil && b.Description == nil {
		return badRequest()
	}
	if b.DisplayName == nil {
		return internalError(`null value in column "display_name" violates not-null constraint`)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	it := &impactType{id: newUUID(), displayName: *b.DisplayName, description: b.Description}
	f.state.impactTypes = append(f.state.impactTypes, it)
	return jsonReply(http.StatusCreated, map[string]string{"id": it.id})
}

func (f *Fake) getImpactType(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	it := f.state.impactType(req.id)
	if it == nil {
		return notFound()
	}
	return dataReply(impactTypeOut{ID: it.id, DisplayName: it.displayName, Description: it.description})
}

func (f *Fake) patchImpactType(req *apiRequest) reply {
	var b impactTypeBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.DisplayName == nil && b.Description == nil {
		return badRequest()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	it := f.state.impactType(req.id)
	if it == nil {
		return notFound()
	}
	if b.DisplayName != nil {
		it.displayName = *b.DisplayName
	}
	if b.Description != nil {
		it.description = b.Description
	}
	return noContent()
}

func (f *Fake) deleteImpactType(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, it := range f.state.impactTypes {
		if it.id == req.id {
			if f.state.impactTypeReferenced(it.id) {
				return internalError("violates foreign key constraint on table \"impacts\"")
			}
			f.state.impactTypes = append(f.state.impactTypes[:i], f.state.impactTypes[i+1:]...)
			return noContent()
		}
	}
	return notFound()
}

func (f *Fake) listSeverities(*apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []severityOut{}
	for _, s := range f.state.severities {
		out = append(out, severityOut{DisplayName: s.displayName, Value: s.value})
	}
	return dataReply(out)
}

// severityValueTaken reports a UNIQUE violation on severities.value, except
// for the row being updated.
func (f *Fake) severityValueTaken(v int, self *severity) bool {
	for _, s := range f.state.severities {
		if s != self && s.value == v {
			return true
		}
	}
	return false
}

func (f *Fake) createSeverity(req *apiRequest) reply {
	var b severityBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.DisplayName == nil && b.Value == nil {
		return badRequest()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &severity{}
	if b.DisplayName != nil {
		s.displayName = *b.DisplayName
	}
	if b.Value != nil {
		s.value = *b.Value // no range check, as on the server
	}
	if f.severityValueTaken(s.value, nil) {
		return badRequest()
	}
	f.state.severities = append(f.state.severities, s)
	return noContent()
}

func (f *Fake) severityByName(name string) *severity {
	for _, s := range f.state.severities {
		if s.displayName == name {
			return s
		}
	}
	return nil
}

func (f *Fake) getSeverity(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.severityByName(req.name)
	if s == nil {
		return notFound()
	}
	return dataReply(severityOut{DisplayName: s.displayName, Value: s.value})
}

func (f *Fake) patchSeverity(req *apiRequest) reply {
	var b severityBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.DisplayName == nil && b.Value == nil {
		return badRequest()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.severityByName(req.name)
	if s == nil {
		return notFound()
	}
	if b.Value != nil && f.severityValueTaken(*b.Value, s) {
		return badRequest()
	}
	if b.DisplayName != nil {
		s.displayName = *b.DisplayName
	}
	if b.Value != nil {
		s.value = *b.Value
	}
	return noContent()
}

func (f *Fake) deleteSeverity(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.state.severities {
		if s.displayName == req.name {
			f.state.severities = append(f.state.severities[:i], f.state.severities[i+1:]...)
			return noContent()
		}
	}
	return notFound()
}
