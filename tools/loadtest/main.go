// Command loadtest measures zuul-bridge end to end against the least a bridge can do.
//
// It starts a real mosquitto (from PATH) and a real nats-server (the one in PATH, else an
// embedded one) on free loopback ports, then the built bridge with a rules file routing
// every report to core NATS. A QoS 1 publisher sends sample Zuul reports (each with a
// unique buildset and item uuid and the send time in Zuul's `timestamp`), at a fixed rate
// and then as fast as it can; a NATS subscriber counts unique reports and measures
// timestamp-to-arrival latency. The same load then goes through a minimal forwarder (this
// program re-executed with -forwarder: paho.golang, auto-ack, json.Valid, core NATS
// publish of the unchanged bytes) on fresh brokers.
//
// Each load (-loads: the -sizes mix, and 3.5 KB reports alone) is measured in paired
// rounds (-rounds): every round runs the bridge and the forwarder once, alternating which
// goes first, so that other work on the machine falls on both alike. It prints per load
// the medians over the rounds, the paired bridge/forwarder ratios, the load average of the
// machine, and the targets; it exits 1 when a report is missing.
//
//	go run ./tools/loadtest                      # about 5 minutes
//	go run ./tools/loadtest -loads 3.5k -rounds 1 -pprof /tmp/prof   # with bridge profiles
//	go run ./tools/loadtest -loads mix -rounds 1 -n 0 -duration 5m -systems bridge   # memory flatness
//	go run ./tools/loadtest -loads 3.5k -statuspage 10   # 10% also to the status page (fake), via the outbox
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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/tools/internal/procs"
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
	loads      string
	rounds     int
	pprofDir   string
	bridgeEnv  string
	fwdEnv     string
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
	flag.StringVar(&o.bridge, "bridge", "", "bridge binary (default: go build -tags nodemo ./cmd/bridge, as the container image)")
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
	flag.StringVar(&o.loads, "loads", "mix,3.5k", "loads to measure, comma-separated: mix (the -sizes mix) or one size alone (1k, 3.5k, 110k)")
	flag.IntVar(&o.rounds, "rounds", 5, "paired rounds per load: each round runs every system once, alternating which goes first; the report gives medians")
	flag.StringVar(&o.bridgeEnv, "bridge-env", "", "extra environment of the bridge, comma-separated KEY=VALUE (e.g. GOMAXPROCS=1)")
	flag.StringVar(&o.fwdEnv, "forwarder-env", "", "extra environment of the forwarder, comma-separated KEY=VALUE (e.g. GOMAXPROCS=1)")
	flag.StringVar(&o.pprofDir, "pprof", "", "write CPU and allocation profiles of the bridge's first round per load and phase into this directory (sets BRIDGE_HTTP_PPROF)")
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

// load is one payload mix measured on every system: "mix" is -sizes, a size label alone
// (1k, 3.5k, 110k) is that sample only.
type load struct {
	name string
	mix  *mix
	// runs[system] holds one result per round, in round order.
	runs map[string][]systemResult
}

func parseLoads(o options, tag uint32) ([]*load, error) {
	var out []*load
	for _, name := range strings.Split(o.loads, ",") {
		name = strings.TrimSpace(name)
		spec := name + ":1"
		if name == "mix" {
			spec = o.sizes
		}
		mx, err := parseMix(spec, tag)
		if err != nil {
			return nil, fmt.Errorf("-loads %s: %w", name, err)
		}
		out = append(out, &load{name: name, mix: mx, runs: map[string][]systemResult{}})
	}
	return out, nil
}

func run(ctx context.Context, o options) (int, error) {
	tag := rand.Uint32()
	loads, err := parseLoads(o, tag)
	if err != nil {
		return 0, err
	}
	if o.rounds < 1 {
		return 0, fmt.Errorf("-rounds must be at least 1")
	}
	systems := strings.Split(o.systems, ",")
	for _, s := range systems {
		if s != "bridge" && s != "forwarder" {
			return 0, fmt.Errorf("-systems: unknown %q", s)
		}
	}
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return 0, fmt.Errorf("-pprof: %w", err)
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
		if bin, err = procs.BuildBridge(dir); err != nil {
			return 0, err
		}
	}
	rateN := int(o.rate * o.duration.Seconds())
	perSystem := o.warmup + rateN + o.n
	runsTotal := len(loads) * o.rounds * len(systems)
	tr := newTracker(tag, perSystem*runsTotal)
	if o.statuspage < 0 || o.statuspage > 100 {
		return 0, fmt.Errorf("-statuspage: a percentage, got %d", o.statuspage)
	}
	var spT *template
	if o.statuspage > 0 {
		if spT, err = statuspageTemplate(tag); err != nil {
			return 0, err
		}
	}

	env := environment{loadBefore: loadAvg()}
	var natsKind string
	base := 0
	for _, ld := range loads {
		// Every run of a load gets the same sequence of sizes: plan[base+i] = first[i].
		first := ld.mix.plan(perSystem, 1)
		plan := make([]*template, perSystem*runsTotal)
		if spT != nil {
			// The same reports of every run also go to the status page route.
			rng := rand.New(rand.NewPCG(2, 0x5eed))
			for i := range first {
				if rng.IntN(100) < o.statuspage {
					first[i] = spT
				}
			}
		}
		for off := 0; off < len(plan); off += perSystem {
			copy(plan[off:], first)
		}
		for round := range o.rounds {
			// Paired rounds, alternating which system goes first, so that a drift in the
			// machine's load (other processes) falls on both alike.
			order := slices.Clone(systems)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				fmt.Fprintf(os.Stderr, "[%s] round %d/%d %s: warm-up %d, %.0f/s for %s, then %d as fast as possible (load average %s)\n",
					ld.name, round+1, o.rounds, s, o.warmup, o.rate, o.duration, o.n, loadAvg())
				profile := ""
				if o.pprofDir != "" && s == "bridge" && round == 0 {
					profile = filepath.Join(o.pprofDir, ld.name)
				}
				r, kind, err := runSystem(ctx, o, s, bin, filepath.Join(dir, fmt.Sprintf("%s-%d-%s", ld.name, round, s)), tr, plan, base, rateN, profile)
				if err != nil {
					return 0, fmt.Errorf("%s %s round %d: %w", ld.name, s, round+1, err)
				}
				natsKind = kind
				ld.runs[s] = append(ld.runs[s], r)
				base += perSystem
			}
		}
	}
	env.loadAfter = loadAvg()
	return report(os.Stdout, o, loads, natsKind, env), nil
}

// environment is what the report says about the machine's state during the run.
type environment struct {
	loadBefore, loadAfter string
}

// loadAvg is the first three fields of /proc/loadavg: on a shared machine, how much else
// ran during the measurement.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// runSystem measures one consumer on its own fresh brokers.
// With profile set (bridge only), each phase's CPU profile and the allocations during it
// are written to profile-<phase>.cpu.pprof and .allocs.pprof.
func runSystem(ctx context.Context, o options, system, bin, dir string, tr *tracker, plan []*template, base, rateN int, profile string) (systemResult, string, error) {
	res := systemResult{name: system, acked: -1}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, "", err
	}
	mq, mqttURL, err := startMosquitto(ctx, dir, o.inflight)
	if err != nil {
		return res, "", err
	}
	defer mq.Stop(5 * time.Second)
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
		defer fake.proc.Stop(5 * time.Second)
	}
	if system == "bridge" {
		spURL := ""
		if fake != nil {
			spURL = fake.url
		}
		c, err = startBridge(ctx, bin, dir, mqttURL, ns.url, o.recvMax, o.logLevel, spURL, o.pprofDir != "", o.bridgeEnv)
	} else {
		c, err = startForwarder(ctx, dir, mqttURL, ns.url, o.recvMax, o.fwdEnv)
	}
	if err != nil {
		return res, "", err
	}
	defer c.proc.Stop(25 * time.Second)
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
		ph.workers, ph.plan, ph.pid, ph.sample = o.pubWorkers, plan, c.proc.Pid(), o.sample
		var prof *profiler
		if profile != "" && ph.name != "warm-up" {
			prof = startProfile(c.httpURL, profile+"-"+phaseFile(ph))
		}
		r, err := runPhase(ctx, pub, tr, ph, c.proc.Exited)
		if prof != nil {
			if perr := prof.finish(); perr != nil {
				fmt.Fprintln(os.Stderr, "  profile:", perr)
			}
		}
		if err != nil {
			return res, "", fmt.Errorf("%s: %w\n%s", ph.name, err, c.proc.Tail(15))
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
