package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// page is the status page fake in this process, with one HTTP proxy per replica, so that
// a fault can hit the writes of one replica, and the time line of its writes.
type page struct {
	fake    *statuspagefake.Fake
	proxies []*pageProxy

	mu sync.Mutex
	// writes are the times of writes the page stored (answered 2xx, or stored with the
	// answer lost).
	writes []time.Time
	// unavailable: every request is answered 503 (a window of the status page down).
	unavailable bool
	// loseArmed: the next write is stored and its answer lost; lost then names the
	// proxy request it was, and onLost is called by that proxy before it closes the
	// connection (to SIGKILL the writer).
	loseArmed bool
	lostReq   string
	lostIdx   int
	onLost    func(idx int)
	lostDone  chan struct{}
}

const replicaHeader, requestHeader = "X-Faultrun-Replica", "X-Faultrun-Request"

func newPage() (*page, error) {
	pg := &page{}
	fake, err := statuspagefake.Start(statuspagefake.Options{Answered: func(r statuspagefake.Request) {
		if r.Method != http.MethodGet && r.Status >= 200 && r.Status < 300 {
			pg.mu.Lock()
			pg.writes = append(pg.writes, time.Now())
			pg.mu.Unlock()
		}
	}})
	if err != nil {
		return nil, err
	}
	pg.fake = fake
	fake.SetFault(pg.fault)
	for i := range 3 {
		px, err := newPageProxy(pg, i, fake.URL())
		if err != nil {
			pg.close()
			return nil, err
		}
		pg.proxies = append(pg.proxies, px)
	}
	return pg, nil
}

func (pg *page) close() {
	for _, px := range pg.proxies {
		px.srv.Close()
	}
	pg.fake.Close()
}

// fault is the fake's hook: the 503 window, and the one write whose answer is lost.
func (pg *page) fault(r *http.Request, _ []byte) (statuspagefake.Fault, bool) {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.unavailable {
		return statuspagefake.Fault{Status: http.StatusServiceUnavailable, Message: "faultrun: status page unavailable"}, true
	}
	if pg.loseArmed && r.Method != http.MethodGet {
		pg.loseArmed = false
		pg.lostReq = r.Header.Get(requestHeader)
		pg.lostIdx, _ = strconv.Atoi(r.Header.Get(replicaHeader))
		pg.writes = append(pg.writes, time.Now()) // stored on the page
		return statuspagefake.Fault{LoseAnswer: true}, true
	}
	return statuspagefake.Fault{}, false
}

func (pg *page) setUnavailable(v bool) {
	pg.mu.Lock()
	pg.unavailable = v
	pg.mu.Unlock()
}

// armLoss makes the next write lose its answer; onLost runs (in the proxy of the writer,
// before the writer sees the connection close) with the writer's index.
func (pg *page) armLoss(onLost func(idx int)) <-chan struct{} {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	pg.loseArmed, pg.lostReq, pg.onLost = true, "", onLost
	pg.lostDone = make(chan struct{})
	return pg.lostDone
}

// disarmLoss cancels an armed loss; it reports whether one had fired.
func (pg *page) disarmLoss() bool {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	pg.loseArmed = false
	return pg.lostReq != ""
}

func (pg *page) writeTimes() []time.Time {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	return append([]time.Time(nil), pg.writes...)
}

func (pg *page) lastWrite() time.Time {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if len(pg.writes) == 0 {
		return time.Time{}
	}
	return pg.writes[len(pg.writes)-1]
}

// pageProxy forwards one replica's requests to the fake, marking them with the replica.
type pageProxy struct {
	pg     *page
	idx    int
	url    string
	target string
	srv    *http.Server
	client *http.Client
	seq    int64
	mu     sync.Mutex
}

func newPageProxy(pg *page, idx int, target string) (*pageProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	px := &pageProxy{pg: pg, idx: idx, url: "http://" + l.Addr().String(), target: target,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	px.srv = &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second}
	go px.srv.Serve(l)
	return px, nil
}

func (px *pageProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	px.mu.Lock()
	px.seq++
	id := strconv.Itoa(px.idx) + "-" + strconv.FormatInt(px.seq, 10)
	px.mu.Unlock()
	req, err := http.NewRequestWithContext(r.Context(), r.Method, px.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	req.Header.Set(replicaHeader, strconv.Itoa(px.idx))
	req.Header.Set(requestHeader, id)
	resp, err := px.client.Do(req)
	if err != nil {
		// The fake closed the connection: pass that on as it is (no 502, which would be
		// an answer). If this was the write whose answer is lost, its writer is killed
		// first, so that it never learns the outcome.
		px.pg.mu.Lock()
		lost := px.pg.lostReq == id
		onLost, done := px.pg.onLost, px.pg.lostDone
		px.pg.mu.Unlock()
		if lost && onLost != nil {
			onLost(px.idx)
			close(done)
		}
		hijackClose(w)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func hijackClose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// stallMeter samples the outbox consumer: the longest time during which work was pending
// and the page stored nothing.
type stallMeter struct {
	mu           sync.Mutex
	pendingSince time.Time // zero: nothing pending
	longest      time.Duration
	from, to     time.Time
	samples      int
	errors       int
	lastPending  uint64
	lastErr      string
}

func (s *stallMeter) run(ctx context.Context, js jetstream.JetStream, pg *page) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		pending, err := outboxPending(cctx, js)
		cancel()
		now := time.Now()
		s.mu.Lock()
		s.samples++
		if err != nil {
			s.errors++
			s.lastErr = err.Error()
			s.mu.Unlock()
			continue // unknown now (a NATS node down): the stall goes on if it was one
		}
		s.lastPending = pending
		if pending == 0 {
			s.pendingSince = time.Time{}
		} else {
			if s.pendingSince.IsZero() {
				s.pendingSince = now
			}
			from := s.pendingSince
			if lw := pg.lastWrite(); lw.After(from) {
				from = lw
			}
			if d := now.Sub(from); d > s.longest {
				s.longest, s.from, s.to = d, from, now
			}
		}
		s.mu.Unlock()
	}
}

func (s *stallMeter) pending() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastPending
}

const outboxStream = "ZUUL_BRIDGE_OUTBOX"

// outboxPending is what the outbox holds that is not acknowledged yet, over its
// consumers (one per status page route).
func outboxPending(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	st, err := js.Stream(ctx, outboxStream)
	if err != nil {
		return 0, err
	}
	var n uint64
	l := st.ListConsumers(ctx)
	for info := range l.Info() {
		n += info.NumPending + uint64(info.NumAckPending)
	}
	return n, l.Err()
}
