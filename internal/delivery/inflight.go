package delivery

import (
	"context"
	"errors"
	"sync"
)

// One owner per report: the MQTT intake (Handle) and the zuul-web reconciler (Submit) can
// both hold the same report (same Event.ID) at once, e.g. after a restart with a backlog
// in the broker. Without care both publish it, and the reconciler's copy is wrongly
// marked recovered. The Dispatcher keeps the ids it holds:
//
//   - Submit of an id that an MQTT message holds (queued or being delivered) returns
//     ErrInFlight at once: the MQTT path owns it, and the reconciler looks again later
//     (by then the settled report is remembered as applied).
//   - An MQTT message whose id a Submit is delivering waits for that Submit; when it
//     settled, the message is acknowledged without delivering the report again. So is
//     one whose id one of the last recentSubmitted Submits settled.

// ErrInFlight: Submit found the report already held by the MQTT path.
var ErrInFlight = errors.New("report in flight on the MQTT path")

type flights struct {
	mu sync.Mutex
	m  map[string]*flight

	// ids the last Submits settled: a ring and its set
	done     map[string]struct{}
	doneRing []string
	doneNext int
}

// recentSubmitted bounds the ids remembered as settled by Submit.
const recentSubmitted = 4096

// rememberSubmitted records id as settled by a Submit. Under f.mu.
func (f *flights) rememberSubmitted(id string) {
	if f.done == nil {
		f.done = map[string]struct{}{}
	}
	if _, ok := f.done[id]; ok {
		return
	}
	if len(f.doneRing) < recentSubmitted {
		f.doneRing = append(f.doneRing, id)
	} else {
		delete(f.done, f.doneRing[f.doneNext])
		f.doneRing[f.doneNext] = id
		f.doneNext = (f.doneNext + 1) % recentSubmitted
	}
	f.done[id] = struct{}{}
}

type flight struct {
	mqtt   int           // MQTT messages holding the id
	submit chan struct{} // non-nil while a Submit delivers the id; closed when it is done
	ok     bool          // the Submit settled (valid once submit is closed)
}

func (f *flights) get(id string) *flight {
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	fl := f.m[id]
	if fl == nil {
		fl = &flight{}
		f.m[id] = fl
	}
	return fl
}

func (f *flights) drop(id string, fl *flight) {
	if fl.mqtt == 0 && fl.submit == nil {
		delete(f.m, id)
	}
}

// enterMQTT records an MQTT message holding id; leaveMQTT ends it.
func (f *flights) enterMQTT(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(id).mqtt++
}

func (f *flights) leaveMQTT(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[id]; fl != nil {
		fl.mqtt--
		f.drop(id, fl)
	}
}

// enterSubmit claims id for a Submit; it fails when an MQTT message or another Submit
// holds it. done ends the claim, telling waiting MQTT messages whether it settled.
func (f *flights) enterSubmit(id string) (done func(settled bool), err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := f.get(id)
	if fl.mqtt > 0 || fl.submit != nil {
		return nil, ErrInFlight
	}
	ch := make(chan struct{})
	fl.submit = ch
	return func(settled bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		fl.ok = settled
		fl.submit = nil
		if settled {
			f.rememberSubmitted(id)
		}
		close(ch)
		f.drop(id, fl)
	}, nil
}

// awaitSubmit waits while a Submit delivers id and reports whether that Submit, or a
// recent one, settled it (the MQTT copy then needs no delivery). Call it with the id
// entered (enterMQTT).
func (f *flights) awaitSubmit(ctx context.Context, id string) (settledBySubmit bool) {
	f.mu.Lock()
	if _, ok := f.done[id]; ok {
		f.mu.Unlock()
		return true
	}
	fl := f.m[id]
	if fl == nil || fl.submit == nil {
		f.mu.Unlock()
		return false
	}
	ch := fl.submit
	f.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return fl.ok
}

// submitted reports, without waiting, whether a Submit delivers id now or settled it
// recently: then awaitSubmit has something to say about it.
func (f *flights) submitted(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, done := f.done[id]
	fl := f.m[id]
	return done || fl != nil && fl.submit != nil
}

// inFlight is the number of ids held (for tests).
func (f *flights) inFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}
