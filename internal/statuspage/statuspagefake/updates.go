package statuspagefake

import (
	"net/http"
	"runtime"
	"sort"
	"time"
)

// errDuplicateOrder is the PK violation two concurrent update POSTs cause.
const errDuplicateOrder = `ERROR: duplicate key value violates unique constraint "incident_updates_pkey" (SQLSTATE 23505)`

func (f *Fake) createUpdate(req *apiRequest) reply {
	var b updateBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.empty() {
		return badRequest()
	}
	// Like the server's READ COMMITTED transaction: compute max(order)+1,
	// let others run, then insert; a concurrent post that took the same
	// order in between makes this insert violate the primary key.
	f.mu.Lock()
	inc := f.state.incidents[req.id]
	if inc == nil {
		f.mu.Unlock()
		return internalError(`insert or update on table "incident_updates" violates foreign key constraint`)
	}
	order := inc.nextOrder()
	f.mu.Unlock()

	runtime.Gosched()

	if f.takeCollision() {
		return internalError(errDuplicateOrder)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	inc = f.state.incidents[req.id]
	if inc == nil {
		return internalError(`insert or update on table "incident_updates" violates foreign key constraint`)
	}
	if _, taken := inc.updates[order]; taken {
		return internalError(errDuplicateOrder)
	}
	u := &update{order: order, displayName: b.DisplayName, description: b.Description, createdAt: dbTime(time.Now())}
	if b.CreatedAt != nil {
		u.createdAt = dbTime(*b.CreatedAt)
	}
	inc.updates[order] = u
	return jsonReply(http.StatusCreated, map[string]int{"order": order})
}

func (f *Fake) updateOut(u *update) updateOut {
	return updateOut{Order: u.order, DisplayName: u.displayName, Description: u.description, CreatedAt: f.renderTime(&u.createdAt)}
}

func (f *Fake) listUpdates(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []updateOut{}
	inc := f.state.incidents[req.id]
	if inc == nil {
		return dataReply(out) // no existence check: [] for unknown incidents
	}
	for _, u := range inc.updates {
		out = append(out, f.updateOut(u))
	}
	// No ORDER BY on the server; highest first so clients must sort.
	sort.Slice(out, func(i, j int) bool { return out[i].Order > out[j].Order })
	return dataReply(out)
}

func (f *Fake) findUpdate(req *apiRequest) *update {
	inc := f.state.incidents[req.id]
	if inc == nil {
		return nil
	}
	return inc.updates[req.order]
}

func (f *Fake) getUpdate(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.findUpdate(req)
	if u == nil {
		return notFound()
	}
	return dataReply(f.updateOut(u))
}

func (f *Fake) patchUpdate(req *apiRequest) reply {
	var b updateBody
	if err := bindBody(req.r, req.body, &b); err != nil {
		return internalError(err.Error())
	}
	if b.empty() {
		return badRequest()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.findUpdate(req)
	if u == nil {
		return notFound()
	}
	if b.DisplayName != nil {
		u.displayName = b.DisplayName
	}
	if b.Description != nil {
		u.description = b.Description
	}
	if b.CreatedAt != nil {
		u.createdAt = dbTime(*b.CreatedAt)
	}
	return noContent()
}

func (f *Fake) deleteUpdate(req *apiRequest) reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	inc := f.state.incidents[req.id]
	if inc == nil || inc.updates[req.order] == nil {
		return notFound()
	}
	delete(inc.updates, req.order)
	return noContent()
}
