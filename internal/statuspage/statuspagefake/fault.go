package statuspagefake

import "net/http"

// Fault is what the fake does instead of serving a request.
type Fault struct {
	// Status is answered with echo's body {"message": Message}; 500 if zero
	// and neither Hang nor CloseConn is set.
	Status  int
	Message string
	// Hang answers nothing until the request's context is done (the client
	// timed out or went away) or the fake is closed.
	Hang bool
	// CloseConn closes the connection without answering. Note that net/http
	// clients transparently retry an idempotent request (GET) once when a
	// reused connection is closed this way.
	CloseConn bool
	// LoseAnswer serves the request as usual (the state changes, as on the real server)
	// and then closes the connection instead of answering: a write whose answer was
	// lost, which a client must not repeat blindly.
	LoseAnswer bool
}

// SetFault installs a hook that runs before normal handling of every
// request; if it returns true the fake does what the Fault says. nil
// removes it. Requests are recorded and validated as usual.
func (f *Fake) SetFault(fn func(r *http.Request, body []byte) (Fault, bool)) {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	f.faultFn = fn
}

// FailNext makes the next n requests get fault (before any SetFault hook).
func (f *Fake) FailNext(n int, fault Fault) {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	f.failNext = n
	f.failFault = fault
}

func (f *Fake) fault(r *http.Request, body []byte) (Fault, bool) {
	f.metaMu.Lock()
	if f.failNext > 0 {
		f.failNext--
		ft := f.failFault
		f.metaMu.Unlock()
		return ft, true
	}
	fn := f.faultFn
	f.metaMu.Unlock()
	if fn == nil {
		return Fault{}, false
	}
	// The hook runs unlocked so it may call the fake's methods.
	return fn(r, body)
}

func (f *Fake) applyFault(w http.ResponseWriter, r *http.Request, ft Fault, done func(int)) {
	switch {
	case ft.CloseConn:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				done(0)
				return
			}
		}
		// Not hijackable (HTTP/2): abort the response instead.
		done(0)
		panic(http.ErrAbortHandler)
	case ft.Hang:
		select {
		case <-r.Context().Done():
		case <-f.closing:
		}
		done(0)
	default:
		status := ft.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		rep := messageReply(status, ft.Message)
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(rep.status)
		_, _ = w.Write(rep.body)
		done(status)
	}
}
