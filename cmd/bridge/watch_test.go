package main

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// metricWatch reads metrics of a bridge again and again, from start until stop: an
// assertion over a whole period, not one moment.
type metricWatch struct {
	mu    sync.Mutex
	reads int
	max   map[string]float64
	fails int // reads of /metrics that failed
	stop  chan struct{}
	done  chan struct{}
}

func watchMetrics(p *bridgeProc, names ...string) *metricWatch {
	w := &metricWatch{max: map[string]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			for _, n := range names {
				v := p.metricSum(n)
				w.mu.Lock()
				if v < 0 {
					w.fails++
				} else {
					w.max[n] = max(w.max[n], v)
				}
				w.mu.Unlock()
			}
			w.mu.Lock()
			w.reads++
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return w
}

// end stops the watch and returns the number of rounds of reads and the highest value
// of each metric seen.
func (w *metricWatch) end(t *testing.T) (reads int, maxima map[string]float64) {
	t.Helper()
	close(w.stop)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the metric watch did not stop within 30s")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fails > 0 {
		t.Errorf("%d reads of /metrics failed during the watch", w.fails)
	}
	return w.reads, w.max
}

// deliveredAfterExit returns how many distinct reports got holds once everything a
// bridge that has exited had sent is in: the NATS server has seen the bridge's connection
// close (clients is then the number of the test's own connections), and a round trip on
// nc brings in what the server routed before.
func deliveredAfterExit(t *testing.T, ns *server.Server, clients int, nc *nats.Conn, got *collector) int {
	t.Helper()
	waitFor(t, 30*time.Second, "the NATS server to drop the bridge's connection", func() bool { return ns.NumClients() <= clients })
	if err := nc.Flush(); err != nil {
		t.Fatalf("NATS flush: %v", err)
	}
	return got.unique()
}
