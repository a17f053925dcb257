// Command loadtest measures zuul-bridge end to end against the least a bridge can do.
//
// It starts a real mosquitto (from PATH) and a real nats-server (the one in PATH, else an
// embedded one) on free loopback ports, then the built bridge with a rules file routing
// every report to core NATS. A QoS 1 publisher sends sample Zuul reports (a mix of sizes,
// each with a unique buildset and item uuid and the send time in Zuul's `timestamp`), at a
// fixed rate and then as fast as it can; a NATS subscriber counts unique reports and
// measures timestamp-to-arrival latency. The same load then goes through a minimal
// forwarder (this program re-executed with -forwarder) on fresh brokers. It prints a
// markdown table, the bridge/forwarder ratios and the issue-5 targets, and exits 1 when a
// report is missing.
//
//	go run ./tools/loadtest                      # about 1-2 minutes
//	go run ./tools/loadtest -n 0 -duration 5m -systems bridge   # memory flatness
//	go run ./tools/loadtest -statuspage 10       # 10% also to the status page (fake), via the outbox
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	n          int
	rate       float64
	duration   time.Duration
	sizes      string
	bridge     string
	systems    string
	recvMax    int
	inflight   int
	pubWorkers int
	warmup     int
	logLevel   string
	keep       bool
	sample     time.Duration
	statuspage int // percent of reports also bound for the status page (via the outbox)
}

func main() {
	var o options
	var fwd forwarderOpts
	forwarder := flag.Bool("forwarder", false, "internal: run as the minimal forwarder")
	fakeDir := flag.String("statuspage-fake", "", "internal: run as the status page fake, files in this directory")
	flag.StringVar(&fwd.mqttURL, "fwd-mqtt", "", "internal: forwarder MQTT URL")
	flag.StringVar(&fwd.natsURL, "fwd-nats", "", "internal: forwarder NATS URL")
	flag.StringVar(&fwd.topic, "fwd-topic", "zuul/#", "internal: forwarder MQTT topic filter")
	flag.StringVar(&fwd.subject, "fwd-subject", natsPrefix+".raw", "internal: forwarder NATS subject")
	flag.IntVar(&o.n, "n", 20000, "reports in the as-fast-as-possible phase (0 skips it)")
	flag.Float64Var(&o.rate, "rate", 1000, "reports per second in the fixed-rate phase")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of the fixed-rate phase (0 skips it); 5m for the memory-flatness run")
	flag.StringVar(&o.sizes, "sizes", "1k:45,3.5k:45,110k:10", "mix of sample sizes, label:weight (1k, 3.5k, 110k)")
	flag.StringVar(&o.bridge, "bridge", "", "bridge binary (default: go build ./cmd/bridge)")
	flag.StringVar(&o.systems, "systems", "bridge,forwarder", "what to measure: bridge, forwarder or both")
	flag.IntVar(&o.recvMax, "recvmax", 128, "MQTT Receive Maximum of bridge and forwarder (the bridge's default is 128)")
	flag.IntVar(&o.inflight, "inflight", 256, "mosquitto max_inflight_messages (the publisher's window)")
	flag.IntVar(&o.pubWorkers, "pubworkers", 64, "concurrent QoS 1 publishes")
	flag.IntVar(&o.warmup, "warmup", 300, "unmeasured reports before the phases")
	flag.StringVar(&o.logLevel, "log-level", "info", "BRIDGE_LOG_LEVEL (info is the production default)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with broker and bridge logs")
	flag.DurationVar(&o.sample, "sample", 10*time.Second, "RSS sampling interval")
	flag.IntVar(&o.statuspage, "statuspage", 0, "percent of reports (a failing project of their own) that a second route also sends to the status page fake; "+
		"the NATS server then runs JetStream, so that this work goes through the bridge's outbox")
	flag.Parse()
	if *fakeDir != "" {
		if err := runStatuspageFake(*fakeDir); err != nil {
			fmt.Fprintln(os.Stderr, "statuspage fake:", err)
			os.Exit(1)
		}
		return
	}
	if *forwarder {
		fwd.recvMax = o.recvMax
		if err := runForwarder(fwd); err != nil {
			fmt.Fprintln(os.Stderr, "forwarder:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

type systemResult struct {
	name   string
	phases []phaseResult
	acked  float64
	// statuspage is what the status page fake saw (-statuspage runs of the bridge).
	statuspage string
}

func run(ctx context.Context, o options) (int, error) {
	tag := rand.Uint32()
	mx, err := parseMix(o.sizes, tag)
	if err != nil {
		return 0, err
	}
	systems := strings.Split(o.systems, ",")
	for _, s := range systems {
		if s != "bridge" && s != "forwarder" {
			return 0, fmt.Errorf("-systems: unknown %q", s)
		}
	}
	dir, err := os.MkdirTemp("", "zb-loadtest-")
	if err != nil {
		return 0, err
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "logs in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := o.bridge
	if bin == "" && strings.Contains(o.systems, "bridge") {
		fmt.Fprintln(os.Stderr, "building ./cmd/bridge ...")
		if bin, err = buildBridge(dir); err != nil {
			return 0, err
		}
	}
	rateN := int(o.rate * o.duration.Seconds())
	perSystem := o.warmup + rateN + o.n
	tr := newTracker(tag, perSystem*len(systems))
	plan := mx.plan(perSystem*len(systems), 1)
	if o.statuspage < 0 || o.statuspage > 100 {
		return 0, fmt.Errorf("-statuspage: a percentage, got %d", o.statuspage)
	}
	if o.statuspage > 0 {
		spT, err := statuspageTemplate(tag)
		if err != nil {
			return 0, err
		}
		rng := rand.New(rand.NewPCG(2, 0x5eed))
		for i := range plan {
			if rng.IntN(100) < o.statuspage {
				plan[i] = spT
			}
		}
	}

	var results []systemResult
	var natsKind string
	for i, s := range systems {
		base := i * perSystem
		fmt.Fprintf(os.Stderr, "%s: warm-up %d, %.0f/s for %s, then %d as fast as possible\n", s, o.warmup, o.rate, o.duration, o.n)
		r, kind, err := runSystem(ctx, o, s, bin, filepath.Join(dir, s), tr, plan, base, rateN)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", s, err)
		}
		natsKind = kind
		results = append(results, r)
	}
	return report(os.Stdout, o, mx, natsKind, results), nil
}

// runSystem measures one consumer on its own fresh brokers.
func runSystem(ctx context.Context, o options, system, bin, dir string, tr *tracker, plan []*template, base, rateN int) (systemResult, string, error) {
	res := systemResult{name: system, acked: -1}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, "", err
	}
	mq, mqttURL, err := startMosquitto(ctx, dir, o.inflight)
	if err != nil {
		return res, "", err
	}
	defer mq.stop(5 * time.Second)
	ns, err := startNATS(ctx, dir, o.statuspage > 0)
	if err != nil {
		return res, "", err
	}
	defer ns.stop()

	var c *consumer
	var fake *statuspageProc
	if system == "bridge" && o.statuspage > 0 {
		if fake, err = startStatuspageFake(ctx, dir); err != nil {
			return res, "", err
		}
		defer fake.proc.stop(5 * time.Second)
	}
	if system == "bridge" {
		spURL := ""
		if fake != nil {
			spURL = fake.url
		}
		c, err = startBridge(ctx, bin, dir, mqttURL, ns.url, o.recvMax, o.logLevel, spURL)
	} else {
		c, err = startForwarder(ctx, dir, mqttURL, ns.url, o.recvMax)
	}
	if err != nil {
		return res, "", err
	}
	defer c.proc.stop(25 * time.Second)
	res.name = c.name

	nc, err := tr.subscribe(ns.url)
	if err != nil {
		return res, "", err
	}
	defer nc.Close()
	pub, err := newPublisher(ctx, mqttURL)
	if err != nil {
		return res, "", err
	}
	defer pub.close()

	phases := []phase{{name: "warm-up", lo: base, n: o.warmup}}
	if rateN > 0 {
		phases = append(phases, phase{name: fmt.Sprintf("%.0f/s for %s", o.rate, o.duration), lo: base + o.warmup, n: rateN, rate: o.rate})
	}
	if o.n > 0 {
		phases = append(phases, phase{name: "max", lo: base + o.warmup + rateN, n: o.n})
	}
	for _, ph := range phases {
		if ph.n == 0 {
			continue
		}
		ph.workers, ph.plan, ph.pid, ph.sample = o.pubWorkers, plan, c.proc.pid(), o.sample
		r, err := runPhase(ctx, pub, tr, ph, c.proc.exited)
		if err != nil {
			return res, "", fmt.Errorf("%s: %w\n%s", ph.name, err, c.proc.tail(15))
		}
		fmt.Fprintf(os.Stderr, "  %-18s %6d reports, %7.0f/s, p99 %s, missing %d\n", ph.name, r.received, r.delivPerS, r.p99.Round(10*time.Microsecond), r.missing)
		if ph.name != "warm-up" {
			res.phases = append(res.phases, r)
		}
	}
	res.acked = c.acked()
	if fake != nil {
		// The status page work of this run: wait (bounded) until the outbox applied it.
		want := 0
		for _, t := range plan[base : base+o.warmup+rateN+o.n] {
			if t.label == statuspageLabel {
				want++
			}
		}
		writes := func() int { n, _ := fake.stats(); return n }
		atEnd, start := writes(), time.Now()
		for writes() < want && time.Since(start) < 5*time.Minute && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		n, violations := fake.stats()
		res.statuspage = fmt.Sprintf("%d reports for the status page; %d applied when the last report arrived on NATS, %d after %s more "+
			"(one incident, one item at a time through the outbox); %d spec violations",
			want, atEnd, n, time.Since(start).Round(100*time.Millisecond), violations)
	}
	return res, ns.kind, nil
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPU (%s), %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
