package natspub

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/nats-io/nats.go"
)

// Core NATS has no per-message acknowledgement: a flush round trip proves that the server
// read every publish before it, not that it accepted them. Two things break that proof,
// and this file catches both:
//
//   - A publish the server refuses for lack of permission is answered by an
//     asynchronous -ERR that comes before the flush's PONG. nats.go hands it to the
//     connection's ErrorHandler on another goroutine; AsyncError records it per subject,
//     and the flush waits until the handler has seen the latest one.
//   - A reconnect between publish and flush: the publish went down with the old
//     connection, yet the flush succeeds on the new one. Every flush compares the
//     connection's reconnect count with the one of the previous flush; when it changed,
//     the publishes since the previous flush are not confirmed (they are retried).

// ErrPermission: the server refused a publish to the subject (a configuration matter:
// retrying does not help, the report is dead-lettered).
var ErrPermission = errors.New("NATS permissions violation")

// errLostInReconnect: the connection was replaced between publish and flush.
var errLostInReconnect = errors.New("NATS reconnected between publish and flush: the publish may be lost")

// permPublishRe finds the subject in nats.go's rendering of the server's
// `-ERR 'Permissions Violation for Publish to "subject"'`.
var permPublishRe = regexp.MustCompile(`(?i)permissions violation for publish to "([^"]*)"`)

// maxDenied bounds the subjects remembered as refused.
const maxDenied = 10000

type confirmState struct {
	mu       sync.Mutex
	cond     *sync.Cond
	denied   map[string]uint64 // subject -> permission violations seen
	seen     [64]error         // the latest async errors the handler saw
	seenNext int
	watchers map[string]map[*func()]struct{} // subject -> called at its next permission violation

	// Under Publisher.flushMu: the reconnect count at the last flush and the publish
	// sequences a reconnect may have lost.
	reconnects uint64
	lost       [8]seqRange
	lostNext   int
}

type seqRange struct{ from, to uint64 } // from < seq <= to

func newConfirmState() *confirmState {
	c := &confirmState{denied: map[string]uint64{}}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// watchErrors puts the publisher in front of the connection's error handler (which
// still gets every error).
func (p *Publisher) watchErrors() {
	prev := p.nc.Opts.AsyncErrorCB
	p.nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		p.asyncError(err)
		if prev != nil {
			prev(nc, sub, err)
		}
	})
}

// asyncError takes the errors the connection reports asynchronously. Permission
// violations for publishes are remembered per subject, so that the confirmation of a
// publish to that subject fails.
func (p *Publisher) asyncError(err error) {
	c := p.confirm
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[c.seenNext] = err
	c.seenNext = (c.seenNext + 1) % len(c.seen)
	if errors.Is(err, nats.ErrPermissionViolation) {
		if m := permPublishRe.FindStringSubmatch(err.Error()); m != nil {
			if len(c.denied) >= maxDenied {
				clear(c.denied)
			}
			c.denied[m[1]]++
			for w := range c.watchers[m[1]] {
				(*w)()
			}
		}
		p.permissionViolations.Inc()
	}
	c.cond.Broadcast()
}

// onDenied calls f (under c.mu: it must not block) at every permission violation for a
// publish to subject until stop is called.
func (c *confirmState) onDenied(subject string, f func()) (stop func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watchers == nil {
		c.watchers = map[string]map[*func()]struct{}{}
	}
	if c.watchers[subject] == nil {
		c.watchers[subject] = map[*func()]struct{}{}
	}
	c.watchers[subject][&f] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		// The subject's set holds f until now, so it is still the one f was put in.
		delete(c.watchers[subject], &f)
		if len(c.watchers[subject]) == 0 {
			delete(c.watchers, subject)
		}
	}
}

// deniedCount is how often a publish to subject was refused so far.
func (c *confirmState) deniedCount(subject string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.denied[subject]
}

// awaitAsyncErrors returns once the error handler has seen the connection's last error,
// if that is a permission violation: nats.go records it (LastError) before it reads the
// flush's PONG, and queues the handler call, which may run a little later. The wait is
// bounded by ctx.
func (p *Publisher) awaitAsyncErrors(ctx context.Context) error {
	last := p.nc.LastError()
	if !errors.Is(last, nats.ErrPermissionViolation) {
		return nil
	}
	c := p.confirm
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.saw(last) {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the server's error report: %w", ctx.Err())
		}
		c.cond.Wait()
	}
	return nil
}

// saw: the handler got this error value. Under c.mu.
func (c *confirmState) saw(err error) bool {
	for _, e := range c.seen {
		if e == err {
			return true
		}
	}
	return false
}

// markLost records, after a flush, that the publishes in (from, to] may have gone down
// with a replaced connection. Under flushMu.
func (c *confirmState) markLost(from, to uint64) {
	c.lost[c.lostNext] = seqRange{from, to}
	c.lostNext = (c.lostNext + 1) % len(c.lost)
}

// wasLost reports whether publish seq is in a range a reconnect may have lost. Under flushMu.
func (c *confirmState) wasLost(seq uint64) bool {
	for _, r := range c.lost {
		if seq > r.from && seq <= r.to {
			return true
		}
	}
	return false
}
