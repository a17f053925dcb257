// Command faultrun runs zuul-bridge under random faults for a chosen number of minutes
// and checks what must hold afterwards (issue 28).
//
// It builds the bridge (as the image does) and a current nats-server, and starts on
// loopback only: mosquitto (own config, persistence, no queue limit), a three-node
// nats-server cluster with JetStream (routes on loopback, a store per node), an R3 stream
// FAULTRUN_REPORTS for zuul.>, the status page fake in this process behind one small HTTP
// proxy per replica, and three bridge replicas on the shared subscription
// $share/bridges/zuul/#, each with all three NATS URLs and R3 for its JetStream state.
// The rules send every report to NATS, and the periodic pipeline of eight projects to the
// status page.
//
// It publishes about -rate reports per second (unique ids, sent once as Zuul does) and
// every -page-interval a failing or passing report for each of the eight projects (a
// random story per project, repeated until the broker acknowledges it, so that the story
// is known). Meanwhile it injects faults one at a time at random intervals: SIGKILL and
// SIGTERM of a replica, SIGKILL of a NATS node, a mosquitto restart, a 503 window on the
// status page, and a write the page stored whose answer was lost, followed by SIGKILL of
// its writer; each is undone after a while (the process restarted and ready).
//
// At the end it stops publishing, waits (bounded) until the work is done, and checks:
// every report the broker acknowledged to the publisher is in the stream (at least once);
// one incident per failure streak of a project, no update twice, each project's final
// state right (open iff its last report failed); the longest stall of the status page
// work against the faults. It prints the faults, the counts and the findings, and exits
// 1 when an invariant broke (2 when the run itself could not be done).
//
//	go run ./tools/faultrun -minutes 20 -seed 7
//	go run ./tools/faultrun -minutes 2 -keep     # keep the logs of every process
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/tools/internal/procs"

	"github.com/nats-io/nats.go/jetstream"
)

type options struct {
	minutes      float64
	seed         uint64
	rate         float64
	pageInterval time.Duration
	keep         bool
	bridge       string
	quiesce      time.Duration
	faults       string
	noHold       bool
}

func main() {
	var o options
	flag.Float64Var(&o.minutes, "minutes", 5, "length of the faulty phase in minutes")
	flag.Uint64Var(&o.seed, "seed", 0, "random seed of the faults and stories (0: a random one, printed)")
	flag.Float64Var(&o.rate, "rate", 50, "reports per second to the NATS route")
	flag.DurationVar(&o.pageInterval, "page-interval", 20*time.Second, "interval of the status page reports (one per project)")
	flag.BoolVar(&o.keep, "keep", false, "keep the directory with every process's log")
	flag.StringVar(&o.bridge, "bridge", "", "bridge binary (default: go build -tags nodemo ./cmd/bridge)")
	flag.DurationVar(&o.quiesce, "quiesce", 4*time.Minute, "the longest wait for the work to settle after publishing stops")
	flag.StringVar(&o.faults, "faults", strings.Join(faultKinds, ","), "the kinds of fault to draw from, comma-separated")
	flag.BoolVar(&o.noHold, "no-hold", false, "publish on after a mosquitto restart without waiting for the replicas to subscribe again "+
		"(shows mosquitto dropping reports for a shared subscription nobody holds yet: PUBACK 0x10)")
	flag.Parse()
	if o.seed == 0 {
		o.seed = rand.Uint64() % 1000000
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultrun:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

type harness struct {
	o        options
	dir      string
	clock    clock
	log      *logger
	mq       *mosquitto
	nats     *natsCluster
	page     *page
	replicas []*replica
	gate     *gate
	findings *findings
}

// findings are what the checks found; broken ones make the exit code 1.
type findings struct {
	mu    sync.Mutex
	items []finding
}

type finding struct {
	broken bool
	text   string
}

func (f *findings) add(broken bool, format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = append(f.items, finding{broken: broken, text: fmt.Sprintf(format, a...)})
}

func (f *findings) list() []finding {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]finding(nil), f.items...)
}

const rulesYAML = `# faultrun: every report to NATS (the R3 stream covers zuul.>), the periodic pipeline
# of eight projects to the status page.
routes:
  - name: all
    nats:
      subject: "zuul.{tenant}.{pipeline}.{project}.{result}"
  - name: nightly
    match:
      pipeline: periodic-daily
      project: [faultrun/p1, faultrun/p2, faultrun/p3, faultrun/p4, faultrun/p5, faultrun/p6, faultrun/p7, faultrun/p8]
    statuspage:
      component: Zuul
`

func run(ctx context.Context, o options) (int, error) {
	if err := checkSamples(); err != nil {
		return 0, err
	}
	var kinds []string
	for _, k := range strings.Split(o.faults, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if !slices.Contains(faultKinds, k) {
			return 0, fmt.Errorf("-faults: unknown %q (have %s)", k, strings.Join(faultKinds, ", "))
		}
		kinds = append(kinds, k)
	}
	dir, err := os.MkdirTemp("", "zb-faultrun-")
	if err != nil {
		return 0, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	h := &harness{o: o, dir: dir, log: &logger{c: clock{start: time.Now()}}, gate: newGate(), findings: &findings{}}
	h.log.printf("seed %d, %.1f minutes of faults, logs in %s%s", o.seed, o.minutes, dir, map[bool]string{true: " (kept)", false: " (removed at the end; -keep keeps them)"}[o.keep])
	bin := o.bridge
	if bin == "" {
		h.log.printf("building ./cmd/bridge and nats-server ...")
		if bin, err = procs.BuildBridge(dir); err != nil {
			return 0, err
		}
	}
	natsBin, err := procs.BuildNATSServer(dir)
	if err != nil {
		return 0, err
	}
	if h.mq, err = newMosquitto(ctx, dir); err != nil {
		return 0, err
	}
	defer h.mq.stop()
	if h.nats, err = newNATSCluster(ctx, natsBin, dir); err != nil {
		return 0, err
	}
	defer h.nats.stop()
	nc, err := natsConnect(h.nats.urls(), "faultrun")
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	if err := createStream(ctx, js); err != nil {
		return 0, err
	}
	if h.page, err = newPage(); err != nil {
		return 0, err
	}
	defer h.page.close()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(rulesYAML), 0o600); err != nil {
		return 0, err
	}
	if h.replicas, err = newReplicas(bin, dir, h.mq.url(), h.nats.urls(), h.page.proxies, rules); err != nil {
		return 0, err
	}
	for _, r := range h.replicas {
		if err := r.start(ctx); err != nil {
			return 0, err
		}
		defer func() { r.proc().Stop(15 * time.Second) }()
	}
	h.log.printf("mosquitto %s, NATS %s, 3 replicas ready", h.mq.url(), h.nats.urls())

	bulkPub, err := newPublisher(ctx, h.mq.url(), "faultrun-zuul-bulk")
	if err != nil {
		return 0, err
	}
	defer bulkPub.close()
	pagePub, err := newPublisher(ctx, h.mq.url(), "faultrun-zuul-periodic")
	if err != nil {
		return 0, err
	}
	defer pagePub.close()

	rng := rand.New(rand.NewPCG(o.seed, 0xfa17))
	led := &ledger{tag: rng.Uint32()}
	var stories []*story
	for i := range 8 {
		stories = append(stories, &story{project: fmt.Sprintf("faultrun/p%d", i+1)})
	}
	flog := &faultLog{active: -1}
	inj := &injector{h: h, rng: rand.New(rand.NewPCG(o.seed, 0xfa18)), log: flog, kinds: kinds}

	var stall stallMeter
	meterCtx, stopMeter := context.WithCancel(ctx)
	defer stopMeter()
	go stall.run(meterCtx, js, h.page)

	h.clock = clock{start: time.Now()}
	h.log.c = h.clock
	h.log.printf("publishing %.0f reports/s, page reports every %s; faults start", o.rate, o.pageInterval)
	pubCtx, stopPub := context.WithTimeout(ctx, time.Duration(o.minutes*float64(time.Minute)))
	defer stopPub()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); publishBulk(pubCtx, bulkPub, led, o.rate, h.gate, flog.current) }()
	go func() {
		defer wg.Done()
		publishPage(pubCtx, pagePub, led, stories, o.pageInterval, rand.New(rand.NewPCG(o.seed, 0xfa19)), h.gate, flog.current)
	}()
	go func() { defer wg.Done(); inj.run(pubCtx) }()
	wg.Wait()
	end := time.Now()
	h.log.printf("publishing stopped; waiting for the work to settle (at most %s)", o.quiesce)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	quiet := h.quiesce(ctx, js, &stall, o.quiesce)
	stopMeter()
	res, err := h.check(ctx, js, led, stories, flog.list(), &stall, quiet, end)
	if err != nil {
		return 0, err
	}
	h.report(os.Stdout, res, &stall)
	for _, f := range h.findings.list() {
		if f.broken {
			return 1, nil
		}
	}
	return 0, nil
}

// quiesce waits until the stream's message count has not changed for 15 s and the outbox
// holds nothing, at most d; it returns how long that took (-1: not within d).
func (h *harness) quiesce(ctx context.Context, js jetstream.JetStream, stall *stallMeter, d time.Duration) time.Duration {
	start := time.Now()
	var last uint64
	lastChange := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var n uint64
		if s, err := js.Stream(cctx, streamName); err == nil {
			if info, err := s.Info(cctx); err == nil {
				n = info.State.Msgs
			}
		}
		pending, perr := outboxPending(cctx, js)
		cancel()
		if n != last {
			last, lastChange = n, time.Now()
		}
		if perr != nil {
			h.log.printf("quiesce: outbox: %v", perr)
		}
		if perr == nil && pending == 0 && time.Since(lastChange) > 15*time.Second {
			return time.Since(start)
		}
		time.Sleep(time.Second)
	}
	return -1
}
