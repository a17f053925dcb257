package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
)

// A report's identity is its buildset uuid (and item uuid): the run's tag, then its
// sequence number, 32 hex digits. The bridge's Nats-Msg-Id starts with it.
func token(tag uint32, seq int) string { return fmt.Sprintf("%08x%024x", tag, seq) }

// sample is a Zuul report to rewrite: its uuids, project, pipeline and timestamp.
type sample struct {
	raw                []byte
	buildset, item, ts string
	project            string
}

var (
	failureSample = sample{raw: samples.Get("periodic-daily_failure_mixed.json"), buildset: "22799888a7ae82e51b19a6124a096841",
		item: "924b3d3766dd39dcadc27fa569bc2afb", ts: "1736828395.1898394", project: "SovereignCloudStack/k8s-cluster-api-provider"}
	successSample = sample{raw: samples.Get("periodic-daily_success.json"), buildset: "e756696c192909fbdb537f189e5142ee",
		item: "f3b0f9b6286add0f5315387704d3c1f1", ts: "1736830452.4956234", project: "SovereignCloudStack/k8s-cluster-api-provider"}
)

// report renders a report of project in pipeline, with identity tok, sent at now.
func (s sample) report(tok, project, pipeline string, now time.Time) (topic string, payload []byte) {
	b := bytes.ReplaceAll(s.raw, []byte(s.buildset), []byte(tok))
	b = bytes.ReplaceAll(b, []byte(s.item), []byte(tok))
	b = bytes.ReplaceAll(b, []byte(s.project), []byte(project))
	b = bytes.Replace(b, []byte(s.ts), fmt.Appendf(nil, "%.7f", float64(now.UnixNano())/1e9), 1)
	b = bytes.Replace(b, []byte(`"pipeline": "periodic-daily"`), []byte(`"pipeline": "`+pipeline+`"`), 1)
	return "zuul/" + pipeline + "/" + project + "/main/None", b
}

func checkSamples() error {
	for _, s := range []sample{failureSample, successSample} {
		if s.raw == nil {
			return errors.New("sample report missing")
		}
		for _, want := range []string{s.buildset, s.item, s.ts, s.project, `"pipeline": "periodic-daily"`} {
			if !bytes.Contains(s.raw, []byte(want)) {
				return fmt.Errorf("sample lacks %q", want)
			}
		}
		_, b := s.report(token(1, 2), "faultrun/x", "periodic-hourly", time.Now())
		if !json.Valid(b) {
			return errors.New("rewritten sample is not JSON")
		}
	}
	return nil
}

// sent is what the publisher knows about one report.
type sent struct {
	seq   int
	at    time.Time
	rc    int // PUBACK reason code; -1: no PUBACK (the broker was down or went away)
	fault int // index of the fault active when it was sent, -1 none
	page  bool
}

// ledger records every report sent.
type ledger struct {
	mu   sync.Mutex
	tag  uint32
	next atomic.Int64
	all  []sent
}

func (l *ledger) seq() int { return int(l.next.Add(1)) }

func (l *ledger) add(s sent) {
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
}

func (l *ledger) snapshot() []sent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sent(nil), l.all...)
}

type publisher struct {
	cm *autopaho.ConnectionManager
}

func newPublisher(ctx context.Context, mqttURL, id string) (*publisher, error) {
	u, err := url.Parse(mqttURL)
	if err != nil {
		return nil, err
	}
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     10,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewConstantBackoff(250 * time.Millisecond),
		ConnectTimeout:                5 * time.Second,
		ClientConfig:                  paho.ClientConfig{ClientID: id},
	})
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cm.AwaitConnection(actx); err != nil {
		return nil, fmt.Errorf("publisher %s: %w", id, err)
	}
	return &publisher{cm: cm}, nil
}

// publish sends one QoS 1 message; it returns the PUBACK's reason code, -1 without one.
func (p *publisher) publish(ctx context.Context, topic string, payload []byte) int {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := p.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if r == nil {
		return -1
	}
	if err != nil && r.ReasonCode < 0x80 {
		return -1
	}
	return int(r.ReasonCode)
}

func (p *publisher) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.cm.Disconnect(ctx)
}

// gate holds the publishers back while the harness waits for the replicas to subscribe
// again after a broker restart (mosquitto drops what is published to a shared
// subscription nobody holds yet).
type gate struct {
	mu     sync.Mutex
	closed bool
	open   chan struct{}
}

func newGate() *gate { g := &gate{open: make(chan struct{})}; close(g.open); return g }

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed, g.open = true, make(chan struct{})
	}
}

func (g *gate) reopen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		close(g.open)
	}
}

func (g *gate) wait(ctx context.Context) {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

const bulkProject, bulkPipeline = "faultrun/bulk", "periodic-hourly"

// publishBulk sends rate reports per second of a project no status page route takes,
// each once (as Zuul's reporter: no retry), until ctx ends.
func publishBulk(ctx context.Context, p *publisher, l *ledger, rate float64, g *gate, activeFault func() int) {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.wait(ctx)
		if ctx.Err() != nil {
			return
		}
		seq := l.seq()
		now := time.Now()
		topic, b := failureSample.report(token(l.tag, seq), bulkProject, bulkPipeline, now)
		f := activeFault()
		rc := p.publish(ctx, topic, b)
		if ctx.Err() != nil && rc == -1 {
			return // the end of the run, not a fault
		}
		l.add(sent{seq: seq, at: now, rc: rc, fault: f})
	}
}

// story is the sequence of a project's reports to the status page route.
type story struct {
	project string
	fails   []bool // per tick
	seqs    []int  // per tick
	tries   []int  // publishes until a PUBACK with success
	given   []bool // acknowledged (success) within the retry limit
	times   []time.Time
}

func (s *story) String() string {
	var b strings.Builder
	for i, f := range s.fails {
		switch {
		case !s.given[i]:
			b.WriteByte('?')
		case f:
			b.WriteByte('F')
		default:
			b.WriteByte('P')
		}
	}
	return b.String()
}

// publishPage sends, every interval, a failing or passing report for each project: a
// random walk per project (a changed state with probability 0.35). Unlike Zuul these
// are repeated (same identity) until the broker acknowledges them with success, so that
// every project's story is known; the bridge applies a repeated report once.
func publishPage(ctx context.Context, p *publisher, l *ledger, stories []*story, interval time.Duration, rng *rand.Rand, g *gate, activeFault func() int) {
	state := make([]bool, len(stories))
	tick := func() {
		for i, st := range stories {
			if rng.Float64() < 0.35 {
				state[i] = !state[i]
			}
			seq := l.seq()
			st.fails = append(st.fails, state[i])
			st.seqs = append(st.seqs, seq)
			st.tries = append(st.tries, 0)
			st.given = append(st.given, false)
			st.times = append(st.times, time.Now())
		}
		for i, st := range stories {
			k := len(st.fails) - 1
			smp := successSample
			if st.fails[k] {
				smp = failureSample
			}
			topic, b := smp.report(token(l.tag, st.seqs[k]), st.project, "periodic-daily", st.times[k])
			deadline := time.Now().Add(2 * time.Minute)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				g.wait(ctx)
				st.tries[k]++
				f := activeFault()
				rc := p.publish(ctx, topic, b)
				l.add(sent{seq: st.seqs[k], at: time.Now(), rc: rc, fault: f, page: true})
				if rc == 0 {
					st.given[k] = true
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
			_ = i
		}
	}
	tick()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tick()
		}
	}
}
