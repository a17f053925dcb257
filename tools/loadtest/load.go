package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
)

// tracker remembers, per report seq, when it was sent and when it first arrived on NATS.
// The send time is the very value written into the report's `timestamp` field, so the
// latency is Zuul's timestamp to arrival, measured on one clock.
type tracker struct {
	tag    uint32
	tagHex []byte
	sent   []atomic.Int64 // unix ns
	recv   []atomic.Int64 // unix ns of the first arrival
	unique atomic.Int64
	dups   atomic.Int64
	alien  atomic.Int64 // messages without a token of this run
	dead   atomic.Int64 // dead-lettered by the bridge
}

func newTracker(tag uint32, capacity int) *tracker {
	return &tracker{tag: tag, tagHex: fmt.Appendf(nil, "%08x", tag),
		sent: make([]atomic.Int64, capacity), recv: make([]atomic.Int64, capacity)}
}

// seqOf finds the token in the bridge's Nats-Msg-Id header ("<id>/<route>", the id holds
// the token) or, for the forwarder, in the raw payload.
func (tr *tracker) seqOf(m *nats.Msg) int {
	hay := []byte(m.Header.Get("Nats-Msg-Id"))
	if len(hay) == 0 {
		hay = m.Data
	}
	i := bytes.Index(hay, tr.tagHex)
	if i < 0 || len(hay) < i+32 {
		return -1
	}
	v, err := strconv.ParseUint(string(hay[i+8:i+32]), 16, 63)
	if err != nil || v >= uint64(len(tr.sent)) {
		return -1
	}
	return int(v)
}

func (tr *tracker) arrived(m *nats.Msg) {
	now := time.Now().UnixNano()
	seq := tr.seqOf(m)
	if seq < 0 {
		tr.alien.Add(1)
		return
	}
	if tr.recv[seq].CompareAndSwap(0, now) {
		tr.unique.Add(1)
	} else {
		tr.dups.Add(1)
	}
}

// subscribe counts what reaches NATS under natsPrefix, and the bridge's dead letters.
func (tr *tracker) subscribe(natsURL string) (*nats.Conn, error) {
	nc, err := nats.Connect(natsURL, nats.Name("zb-load-subscriber"))
	if err != nil {
		return nil, err
	}
	sub, err := nc.Subscribe(natsPrefix+".>", tr.arrived)
	if err != nil {
		nc.Close()
		return nil, err
	}
	// Never a slow consumer: a dropped message here would be blamed on the bridge.
	_ = sub.SetPendingLimits(-1, -1)
	if _, err := nc.Subscribe("zuul-bridge.deadletter", func(*nats.Msg) { tr.dead.Add(1) }); err != nil {
		nc.Close()
		return nil, err
	}
	return nc, nc.Flush()
}

// publisher is one MQTT v5 QoS 1 client.
type publisher struct {
	cm *autopaho.ConnectionManager
}

func newPublisher(ctx context.Context, mqttURL string) (*publisher, error) {
	u, err := url.Parse(mqttURL)
	if err != nil {
		return nil, err
	}
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ClientConfig:                  paho.ClientConfig{ClientID: "zb-load-publisher"},
	})
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cm.AwaitConnection(actx); err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	return &publisher{cm: cm}, nil
}

func (p *publisher) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.cm.Disconnect(ctx)
}

// phase is one measured load: n reports from seq lo, at rate per second (0: as fast as
// the publisher can).
type phase struct {
	name    string
	lo, n   int
	rate    float64
	workers int
	plan    []*template // by seq
	pid     int         // consumer under test
	sample  time.Duration
}

type phaseResult struct {
	rate                  float64
	name                  string
	n, received, missing  int
	sentPerS, delivPerS   float64
	p50, p99, max         time.Duration
	cpuPer1000            float64
	peakRSSKiB            int64
	rssSeries             []int64 // KiB, every sample interval
	publishErrs, deadLets int64
	elapsed               time.Duration
}

func runPhase(ctx context.Context, pub *publisher, tr *tracker, ph phase, exited <-chan struct{}) (phaseResult, error) {
	res := phaseResult{name: ph.name, n: ph.n, rate: ph.rate}
	peakOK := resetPeakRSS(ph.pid) == nil
	cpu0, err := cpuSeconds(ph.pid)
	if err != nil {
		return res, err
	}
	dead0 := tr.dead.Load()
	uniq0 := tr.unique.Load()

	// RSS every sample interval, for the memory-flatness series.
	stopSampling := make(chan struct{})
	var series []int64
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		t := time.NewTicker(ph.sample)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				if v, err := memKiB(ph.pid, "VmRSS"); err == nil {
					series = append(series, v)
				}
			}
		}
	}()

	jobs := make(chan int, 256)
	var wg sync.WaitGroup
	var pubErrs atomic.Int64
	for range ph.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range jobs {
				at := time.Now()
				payload := ph.plan[seq].render(tr.tag, seq, at)
				tr.sent[seq].Store(at.UnixNano())
				pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := pub.cm.Publish(pctx, &paho.Publish{QoS: 1, Topic: mqttTopic, Payload: payload})
				cancel()
				if err != nil {
					pubErrs.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	for i := range ph.n {
		if ph.rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) * float64(time.Second) / ph.rate))); d > 0 {
				time.Sleep(d)
			}
		}
		select {
		case jobs <- ph.lo + i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	sendEnd := time.Now()

	// Wait for every report, giving up after 20 s without progress.
	target := uniq0 + int64(ph.n)
	last, lastChange := tr.unique.Load(), time.Now()
	for tr.unique.Load() < target {
		if v := tr.unique.Load(); v != last {
			last, lastChange = v, time.Now()
		}
		if time.Since(lastChange) > 20*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-exited:
			return res, errors.New("the consumer exited during the phase")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cpu1, err := cpuSeconds(ph.pid)
	if err != nil {
		return res, err
	}
	close(stopSampling)
	sampling.Wait()
	res.rssSeries = series
	if peakOK {
		res.peakRSSKiB, _ = memKiB(ph.pid, "VmHWM")
	}

	var lats []time.Duration
	var lastArrival int64
	for seq := ph.lo; seq < ph.lo+ph.n; seq++ {
		r := tr.recv[seq].Load()
		if r == 0 {
			continue
		}
		lats = append(lats, time.Duration(r-tr.sent[seq].Load()))
		lastArrival = max(lastArrival, r)
	}
	res.received = len(lats)
	res.missing = ph.n - res.received
	res.publishErrs = pubErrs.Load()
	res.deadLets = tr.dead.Load() - dead0
	res.sentPerS = float64(ph.n) / sendEnd.Sub(start).Seconds()
	if lastArrival > 0 {
		res.elapsed = time.Duration(lastArrival - start.UnixNano())
		res.delivPerS = float64(res.received) / res.elapsed.Seconds()
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		res.p50 = lats[len(lats)/2]
		res.p99 = lats[min(len(lats)-1, len(lats)*99/100)]
		res.max = lats[len(lats)-1]
	}
	if res.received > 0 {
		res.cpuPer1000 = (cpu1 - cpu0) / float64(res.received) * 1000
	}
	return res, nil
}
