package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// fault is one injected fault: from its start until the system was whole again (the
// process restarted and ready, the window closed).
type fault struct {
	kind, target, detail string
	start, end           time.Time
}

func (f *fault) duration() time.Duration { return f.end.Sub(f.start) }

type faultLog struct {
	mu     sync.Mutex
	faults []*fault
	active int // index, -1 none
}

func (fl *faultLog) begin(kind, target string) *fault {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	f := &fault{kind: kind, target: target, start: time.Now()}
	fl.faults = append(fl.faults, f)
	fl.active = len(fl.faults) - 1
	return f
}

func (fl *faultLog) finish(f *fault) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	f.end = time.Now()
	fl.active = -1
}

func (fl *faultLog) current() int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.active
}

func (fl *faultLog) list() []*fault {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return append([]*fault(nil), fl.faults...)
}

// injector runs faults one at a time, at random intervals.
type injector struct {
	h     *harness
	rng   *rand.Rand
	log   *faultLog
	kinds []string
}

var faultKinds = []string{"sigkill-replica", "sigterm-replica", "sigkill-nats", "restart-mosquitto", "statuspage-503", "lost-answer-sigkill-writer"}

func (in *injector) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(in.rng.Int64N(int64(hi-lo)+1))
}

// run injects faults until ctx ends; a fault in progress is completed (restarts done).
func (in *injector) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(in.between(5*time.Second, 25*time.Second)):
		}
		if len(in.kinds) == 0 {
			continue
		}
		kind := in.kinds[in.rng.IntN(len(in.kinds))]
		if err := in.inject(ctx, kind); err != nil {
			in.h.findings.add(true, "fault %s: %v", kind, err)
			in.h.log.printf("fault %s: %v", kind, err)
		}
	}
}

func (in *injector) inject(ctx context.Context, kind string) error {
	h := in.h
	// The restart of a process is done even when the run ends meanwhile.
	bg := context.Background()
	switch kind {
	case "sigkill-replica", "sigterm-replica":
		r := h.replicas[in.rng.IntN(len(h.replicas))]
		down := in.between(3*time.Second, 20*time.Second)
		f := in.log.begin(kind, r.name)
		sig := syscall.SIGKILL
		if kind == "sigterm-replica" {
			sig = syscall.SIGTERM
		}
		h.log.printf("fault: %s %s, restart after %s", sig, r.name, down.Round(100*time.Millisecond))
		r.proc().Signal(sig, 30*time.Second)
		f.detail = fmt.Sprintf("down %s", down.Round(100*time.Millisecond))
		time.Sleep(down)
		err := r.start(bg)
		in.log.finish(f)
		return err
	case "sigkill-nats":
		n := h.nats.nodes[in.rng.IntN(len(h.nats.nodes))]
		down := in.between(5*time.Second, 25*time.Second)
		f := in.log.begin(kind, n.name)
		h.log.printf("fault: SIGKILL nats-server %s, restart after %s", n.name, down.Round(100*time.Millisecond))
		h.nats.kill(n)
		f.detail = fmt.Sprintf("down %s", down.Round(100*time.Millisecond))
		time.Sleep(down)
		err := h.nats.start(bg, n)
		in.log.finish(f)
		return err
	case "restart-mosquitto":
		down := in.between(500*time.Millisecond, 5*time.Second)
		f := in.log.begin(kind, "mosquitto")
		h.log.printf("fault: mosquitto SIGTERM, start again after %s", down.Round(100*time.Millisecond))
		h.mq.stop()
		time.Sleep(down)
		// Publishing waits from the broker's start until every replica has subscribed
		// again: mosquitto does not keep a shared subscription across its restart.
		if !h.o.noHold {
			h.gate.close()
		}
		err := h.mq.start(bg)
		if err == nil {
			var notReady []string
			for _, r := range h.replicas {
				if rerr := r.awaitReady(bg, 60*time.Second); rerr != nil {
					notReady = append(notReady, r.name)
				}
			}
			if len(notReady) > 0 {
				err = fmt.Errorf("not ready 60s after the broker restart: %v", notReady)
			}
		}
		h.gate.reopen()
		f.detail = fmt.Sprintf("down %s, publishing held %s", down.Round(100*time.Millisecond), time.Since(f.start.Add(down)).Round(100*time.Millisecond))
		in.log.finish(f)
		return err
	case "statuspage-503":
		d := in.between(10*time.Second, 40*time.Second)
		f := in.log.begin(kind, "status page")
		h.log.printf("fault: status page answers 503 for %s", d.Round(100*time.Millisecond))
		h.page.setUnavailable(true)
		time.Sleep(d)
		h.page.setUnavailable(false)
		f.detail = d.Round(100 * time.Millisecond).String()
		in.log.finish(f)
		return nil
	case "lost-answer-sigkill-writer":
		f := in.log.begin(kind, "the next writer")
		h.log.printf("fault: the next status page write is stored, its answer lost, its writer SIGKILLed")
		killed := make(chan *replica, 1)
		fired := h.page.armLoss(func(idx int) {
			r := h.replicas[idx]
			r.proc().Signal(syscall.SIGKILL, 10*time.Second)
			killed <- r
		})
		select {
		case <-fired:
		case <-time.After(60 * time.Second):
			if !h.page.disarmLoss() {
				f.detail = "no write within 60s; nothing done"
				in.log.finish(f)
				return nil
			}
			<-fired
		}
		r := <-killed
		down := in.between(3*time.Second, 15*time.Second)
		f.target = r.name
		f.detail = fmt.Sprintf("write stored at %s, answer lost, writer killed; down %s", h.clock.at(time.Now()), down.Round(100*time.Millisecond))
		h.log.printf("fault: %s killed after its write was stored; restart after %s", r.name, down.Round(100*time.Millisecond))
		time.Sleep(down)
		err := r.start(bg)
		in.log.finish(f)
		return err
	}
	return fmt.Errorf("unknown fault %q", kind)
}
