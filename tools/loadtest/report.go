package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/tools/internal/procs"
)

func mib(kib int64) string {
	if kib <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// median of xs (the mean of the middle two for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// column collects one number of phase i over the rounds of a system.
func column(runs []systemResult, i int, f func(phaseResult) float64) []float64 {
	var out []float64
	for _, r := range runs {
		if i < len(r.phases) {
			out = append(out, f(r.phases[i]))
		}
	}
	return out
}

// paired collects f(bridge, forwarder) of phase i for every round both ran.
func paired(b, f []systemResult, i int, fn func(b, f phaseResult) float64) []float64 {
	var out []float64
	for r := range min(len(b), len(f)) {
		if i < len(b[r].phases) && i < len(f[r].phases) {
			out = append(out, fn(b[r].phases[i], f[r].phases[i]))
		}
	}
	return out
}

func list(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " ")
}

func durMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report prints, per load, the median of every figure over the rounds, the paired
// bridge/forwarder ratios (per round and their median) and the targets; it returns the
// exit code: 1 when a report is missing or a publish failed.
func report(w io.Writer, o options, loads []*load, natsKind string, env environment) int {
	code := 0
	fmt.Fprintf(w, "Machine: %s. Brokers: %s, %s, loopback. Receive Maximum %d, bridge log level %s.\n",
		machine(), procs.MosquittoVersion(), natsKind, o.recvMax, o.logLevel)
	if o.bridgeEnv != "" || o.fwdEnv != "" {
		fmt.Fprintf(w, "Extra environment: bridge %q, forwarder %q.\n", o.bridgeEnv, o.fwdEnv)
	}
	if o.statuspage > 0 {
		fmt.Fprintf(w, "%d%% of the reports (the 3.5k failing sample of project %s) also go to a status page route (the fake, in its own process at nice 19), through the outbox on JetStream.\n",
			o.statuspage, statuspageProject)
	}
	fmt.Fprintf(w, "Load average (/proc/loadavg, 1/5/15 min) before: %s, after: %s. %d paired rounds per load; figures are medians over the rounds.\n",
		env.loadBefore, env.loadAfter, o.rounds)
	var targets []string
	for _, ld := range loads {
		fmt.Fprintf(w, "\n### Load %s: %s\n\n", ld.name, ld.mix)
		fmt.Fprintln(w, "| system | load | reports | delivered/s | latency p50 | p99 | max | CPU s / 1000 reports | peak RSS (max of rounds) | missing (all rounds) |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, sys := range []string{"bridge", "forwarder"} {
			runs := ld.runs[sys]
			if len(runs) == 0 {
				continue
			}
			for i, p := range runs[0].phases {
				missing, peak := 0, int64(0)
				for _, r := range runs {
					if i < len(r.phases) {
						missing += r.phases[i].missing
						peak = max(peak, r.phases[i].peakRSSKiB)
						if r.phases[i].missing > 0 || r.phases[i].publishErrs > 0 {
							code = 1
						}
					}
				}
				med := func(f func(phaseResult) float64) float64 { return median(column(runs, i, f)) }
				fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.2f ms | %.2f ms | %.2f ms | %.3f | %s (%s) | %d |\n",
					runs[0].name, p.name, p.n,
					med(func(p phaseResult) float64 { return p.delivPerS }),
					med(func(p phaseResult) float64 { return durMS(p.p50) }),
					med(func(p phaseResult) float64 { return durMS(p.p99) }),
					med(func(p phaseResult) float64 { return durMS(p.max) }),
					med(func(p phaseResult) float64 { return p.cpuPer1000 }),
					mib(int64(med(func(p phaseResult) float64 { return float64(p.peakRSSKiB) }))), mib(peak), missing)
			}
		}
		for _, sys := range []string{"bridge", "forwarder"} {
			for _, r := range ld.runs[sys] {
				for _, p := range r.phases {
					if p.deadLets > 0 || p.publishErrs > 0 {
						fmt.Fprintf(w, "\n%s %s: %d dead-lettered, %d publish errors\n", r.name, p.name, p.deadLets, p.publishErrs)
					}
					if len(p.rssSeries) >= 3 {
						var parts []string
						for _, v := range p.rssSeries {
							parts = append(parts, fmt.Sprintf("%.1f", float64(v)/1024))
						}
						first, last := p.rssSeries[len(p.rssSeries)/2], p.rssSeries[len(p.rssSeries)-1]
						fmt.Fprintf(w, "\n%s RSS during %s, every %s (MiB): %s\n  second half: %+.1f MiB\n",
							r.name, p.name, o.sample, strings.Join(parts, " "), float64(last-first)/1024)
					}
				}
			}
		}
		for _, r := range ld.runs["bridge"] {
			if r.statuspage != "" {
				fmt.Fprintf(w, "%s status page: %s.\n", r.name, r.statuspage)
			}
		}

		b, f := ld.runs["bridge"], ld.runs["forwarder"]
		if len(b) == 0 || len(f) == 0 {
			continue
		}
		fmt.Fprintln(w, "\n| bridge / forwarder, paired by round | throughput | p99 latency difference | CPU per report | peak RSS |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
		for i, p := range b[0].phases {
			thr := paired(b, f, i, func(b, f phaseResult) float64 { return b.delivPerS / f.delivPerS })
			p99 := paired(b, f, i, func(b, f phaseResult) float64 { return durMS(b.p99 - f.p99) })
			cpu := paired(b, f, i, func(b, f phaseResult) float64 { return b.cpuPer1000 / f.cpuPer1000 })
			rss := paired(b, f, i, func(b, f phaseResult) float64 { return float64(b.peakRSSKiB) / float64(f.peakRSSKiB) })
			fmt.Fprintf(w, "| %s | **%.2f** (%s) | **%+.2f ms** (%s) | **%.2f** (%s) | **%.2f** (%s) |\n", p.name,
				median(thr), list(thr, "%.2f"), median(p99), list(p99, "%+.2f"), median(cpu), list(cpu, "%.2f"), median(rss), list(rss, "%.2f"))

			if p.rate == 0 {
				if ld.name == "3.5k" {
					targets = append(targets, fmt.Sprintf("- [%s] flat-out throughput >= 0.9 x forwarder: median %.2f x: %s", ld.name, median(thr), verdict(median(thr) >= 0.9)))
				}
				if o.statuspage > 0 {
					targets = append(targets, fmt.Sprintf("- [%s] with %d%% bound for the status page, throughput >= 0.8 x forwarder: median %.2f x: %s",
						ld.name, o.statuspage, median(thr), verdict(median(thr) >= 0.8)))
				}
				continue
			}
			limit := map[string]float64{"3.5k": 1.25, "mix": 1.5}[ld.name]
			if limit > 0 {
				targets = append(targets, fmt.Sprintf("- [%s] CPU per report at %.0f/s <= %.2f x forwarder: median %.2f x: %s", ld.name, p.rate, limit, median(cpu), verdict(median(cpu) <= limit)))
			}
			targets = append(targets, fmt.Sprintf("- [%s] p99 at %.0f/s within 2 ms of the forwarder's: median difference %+.2f ms: %s", ld.name, p.rate, median(p99), verdict(median(p99) <= 2)))
			peaks := column(b, i, func(p phaseResult) float64 { return float64(p.peakRSSKiB) })
			worst := slices.Max(peaks)
			targets = append(targets, fmt.Sprintf("- [%s] peak RSS at %.0f/s under 40 MiB: median %s, worst round %s: %s", ld.name, p.rate,
				mib(int64(median(peaks))), mib(int64(worst)), verdict(worst > 0 && worst < 40*1024)))
		}
	}
	if len(targets) > 0 {
		fmt.Fprintln(w, "\nTargets from this run:")
		fmt.Fprintln(w, strings.Join(targets, "\n"))
	}
	return code
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}
