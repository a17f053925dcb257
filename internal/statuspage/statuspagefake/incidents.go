package statuspagefake

import (
	"net/http"
	"sort"
)

// nilUUID is refused by gorm as an UPDATE without WHERE.
const nilUUID = "00000000-0000-0000-0000-000000000000"

// checkBody applies the server's body checks of POST/PATCH /incidents (endedAt
// after beganAt, ...); they only
// look at this request's body (also on PATCH).
func checkBody(b incidentBody) (reply, bool) {
	if b.BeganAt != nil && b.EndedAt != nil && b.EndedAt.Before(*b.BeganAt) {
		return messageReply(http.StatusBadRequest, "endedAt before beganAt"), false
	}
	if b.Affects != nil {
		for _, im := range *b.Affects {
			if im.Severity != nil && (*im.Severity < 0 || *im.Severity > 100) {
				return messageReply(http.StatusBadRequest, "severity out of range"), false
			}
		}
		for _, im := range *b.Affects {
			if im.Severity != nil && *im.Severity == 0 && b.EndedAt == nil {
				return messageReply(http.StatusBadRequest, "maintenance needs endedAt"), false
			}
		}
	}
	return reply{}, true
}

// checkPhase is step 5 plus the v1.0.1 regression (§8.1); call with mu held.
func (f *Fake) checkPhase(b incidentBody) (reply, bool) {
	if b.Phase == nil {
		return reply{}, true
	}
	p := Phase{Generation: b.Phase.Generation, Order: b.Phase.Order}
	if f.opts.Version != V100 && !f.state.phaseExists(p) {
		return messageReply(http.StatusBadRequest, "phase does not exist"), false
	}
	if f.opts.Version == V101Broken {
		return internalError(`ERROR: null value in column "name" of relation "phases" violates not-null constraint (SQLSTATE 23502)`), false
	}
	return reply{}, true
}

// toImpacts checks the FKs of affects (call with mu held): an unknown
// component or impact type, or a missing type, is a DB error (500).
// Duplicates are accepted and stored once.
func (f *Fake) toImpacts(in []impactBody) ([]impact, reply, bool) {
	out := []impact{}
	for _, b := range in {
		if b.Reference == nil || b.Type == nil {
			return nil, internalError(`null value in column of relation "impacts" violates not-null constraint`), false
		}
		if f.state.component(string(*b.Reference)) == nil || f.state.impactType(string(*b.Type)) == nil {
			return nil, internalError(`insert or update on table "impacts" violates foreign key constraint`), false
		}
		im := impact{component: string(*b.Reference), impactType: string(*b.Type), severity: b.Severity}
		dup := false
		for _, o := range out {
			dup = dup || (o.component == im.component && o.impactType == im.impactType)
		}
		if !dup {
			out = append(out, im)
		}
	}
	return out, reply{}, true
}

func (f *Fake) createIncident(req *apiRequest) reply {
	var b incidentBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.empty() {
		return badRequest()
	}
	if rep, ok := checkBody(b); !ok {
		return rep
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rep, ok := f.checkPhase(b); !ok {
		return rep
	}
	var affects []impact
	if b.Affects != nil {
		var rep reply
		var ok bool
		if affects, rep, ok = f.toImpacts(*b.Affects); !ok {
			return rep // the transaction rolls back: nothing stored
		}
	}
	inc := &incident{id: newUUID(), displayName: b.DisplayName, description: b.Description, affects: affects, updates: map[int]*update{}}
	inc.beganAt = dbTimePtr(b.BeganAt)
	inc.endedAt = dbTimePtr(b.EndedAt)
	if b.Phase != nil {
		inc.phase = &Phase{Generation: b.Phase.Generation, Order: b.Phase.Order}
		f.state.ensurePhase(*inc.phase)
	}
	f.state.insert(inc)
	return jsonReply(http.StatusCreated, map[string]string{"id": inc.id})
}

func (f *Fake) getIncident(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	inc := f.state.incidents[req.id]
	if inc == nil {
		return notFound()
	}
	if inc.phase == nil {
		return internalError("Internal Server Error") // nil-pointer panic, §8.4
	}
	return dataReply(f.incidentOut(inc))
}

func (f *Fake) listIncidents(req *apiRequest) reply {
	q := req.r.URL.Query()
	for _, name := range []string{"start", "end"} {
		if !q.Has(name) {
			return messageReply(http.StatusBadRequest, "Query argument "+name+" is required, but not found")
		}
	}
	start, err := parseQueryTime(q.Get("start"))
	if err != nil {
		return messageReply(http.StatusBadRequest, "Invalid format for parameter start: "+err.Error())
	}
	end, err := parseQueryTime(q.Get("end"))
	if err != nil {
		return messageReply(http.StatusBadRequest, "Invalid format for parameter end: "+err.Error())
	}
	if end.Before(start) {
		return badRequest()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var hits []*incident
	for _, inc := range f.state.incidents {
		if inWindow(inc, start, end) {
			if inc.phase == nil {
				return internalError("Internal Server Error")
			}
			hits = append(hits, inc)
		}
	}
	// The server has no ORDER BY. Newest first makes clients that assume
	// creation order fail.
	sort.Slice(hits, func(i, j int) bool { return hits[i].seq > hits[j].seq })
	out := []incidentOut{}
	for _, inc := range hits {
		out = append(out, f.incidentOut(inc))
	}
	return dataReply(out)
}

func (f *Fake) patchIncident(req *apiRequest) reply {
	var b incidentBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.empty() {
		return badRequest()
	}
	if rep, ok := checkBody(b); !ok {
		return rep
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rep, ok := f.checkPhase(b); !ok {
		return rep
	}
	if req.id == nilUUID {
		return internalError("WHERE conditions required")
	}
	inc := f.state.incidents[req.id]
	if inc == nil {
		return notFound()
	}
	var affects []impact
	if b.Affects != nil {
		var rep reply
		var ok bool
		if affects, rep, ok = f.toImpacts(*b.Affects); !ok {
			return rep
		}
	}
	// gorm Updates with a struct writes only non-null fields: nothing can
	// be cleared, an ended incident cannot be re-opened.
	if b.DisplayName != nil {
		inc.displayName = b.DisplayName
	}
	if b.Description != nil {
		inc.description = b.Description
	}
	if b.BeganAt != nil {
		inc.beganAt = dbTimePtr(b.BeganAt)
	}
	if b.EndedAt != nil {
		inc.endedAt = dbTimePtr(b.EndedAt)
	}
	if b.Phase != nil {
		inc.phase = &Phase{Generation: b.Phase.Generation, Order: b.Phase.Order}
		f.state.ensurePhase(*inc.phase)
	}
	if b.Affects != nil {
		if f.opts.Version == V100 {
			// Issue #35: impacts are only added, never changed or removed.
			for _, im := range affects {
				if !inc.hasImpact(im.component, im.impactType) {
					inc.affects = append(inc.affects, im)
				}
			}
		} else {
			inc.affects = affects
		}
	}
	if f.opts.Version == V100 && !b.hasColumn() {
		// Issue #38: 404 from RowsAffected 0 although impacts were added.
		return notFound()
	}
	return noContent()
}

func (f *Fake) deleteIncident(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	inc := f.state.incidents[req.id]
	if inc == nil {
		return notFound()
	}
	if f.opts.Version == V100 && len(inc.updates) > 0 {
		return internalError(`update or delete on table "incidents" violates foreign key constraint`)
	}
	delete(f.state.incidents, req.id)
	return noContent()
}

// incidentOut renders an incident; call with mu held.
func (f *Fake) incidentOut(inc *incident) incidentOut {
	out := incidentOut{
		ID: inc.id, DisplayName: inc.displayName, Description: inc.description,
		BeganAt: f.renderTime(inc.beganAt), EndedAt: f.renderTime(inc.endedAt),
		Affects: []impactOut{}, Updates: []int{},
	}
	if inc.phase != nil {
		out.Phase = &phaseRef{Generation: inc.phase.Generation, Order: inc.phase.Order}
	}
	for _, im := range inc.affects {
		out.Affects = append(out.Affects, impactOut{Reference: im.component, Type: im.impactType, Severity: im.severity})
	}
	for o := range inc.updates {
		out.Updates = append(out.Updates, o)
	}
	sort.Ints(out.Updates)
	return out
}
