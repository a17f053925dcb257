package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(kib int64) string {
	if kib <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// report prints the markdown table, the ratios and the targets; it returns the exit code:
// 1 when a report is missing or a publish failed.
func report(w io.Writer, o options, mx *mix, natsKind string, results []systemResult) int {
	code := 0
	fmt.Fprintf(w, "Machine: %s. Brokers: %s, %s, loopback. Mix: %s. Receive Maximum %d, bridge log level %s.\n\n",
		machine(), mosquittoVersion(), natsKind, mx, o.recvMax, o.logLevel)
	if o.statuspage > 0 {
		fmt.Fprintf(w, "%d%% of the reports (the 3.5k failing sample of project %s) also go to a status page route (the fake, in its own process at nice 19), through the outbox on JetStream.\n\n",
			o.statuspage, statuspageProject)
	}
	fmt.Fprintln(w, "| system | load | reports | sent/s | delivered/s | latency p50 | p99 | max | CPU s / 1000 reports | peak RSS | missing |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range results {
		for _, p := range s.phases {
			fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.0f | %s | %s | %s | %.3f | %s | %d |\n",
				s.name, p.name, p.n, p.sentPerS, p.delivPerS, ms(p.p50), ms(p.p99), ms(p.max), p.cpuPer1000, mib(p.peakRSSKiB), p.missing)
			if p.missing > 0 || p.publishErrs > 0 {
				code = 1
			}
		}
	}
	for _, s := range results {
		for _, p := range s.phases {
			if p.deadLets > 0 || p.publishErrs > 0 {
				fmt.Fprintf(w, "\n%s %s: %d dead-lettered, %d publish errors", s.name, p.name, p.deadLets, p.publishErrs)
			}
			if len(p.rssSeries) >= 3 {
				var parts []string
				for _, v := range p.rssSeries {
					parts = append(parts, fmt.Sprintf("%.1f", float64(v)/1024))
				}
				first, last := p.rssSeries[len(p.rssSeries)/2], p.rssSeries[len(p.rssSeries)-1]
				fmt.Fprintf(w, "\n%s RSS during %s, every %s (MiB): %s\n  second half: %+.1f MiB\n",
					s.name, p.name, o.sample, strings.Join(parts, " "), float64(last-first)/1024)
			}
		}
		if s.acked >= 0 {
			fmt.Fprintf(w, "\n%s acknowledged %.0f reports in all (zuul_bridge_reports_acked_total).\n", s.name, s.acked)
		}
		if s.statuspage != "" {
			fmt.Fprintf(w, "%s status page: %s.\n", s.name, s.statuspage)
		}
	}

	b, f := find(results, "zuul-bridge"), find(results, "forwarder")
	if b == nil || f == nil {
		return code
	}
	fmt.Fprintln(w, "\n| bridge / forwarder | throughput | p99 latency | CPU per report | peak RSS |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for i := range b.phases {
		if i >= len(f.phases) {
			break
		}
		bp, fp := b.phases[i], f.phases[i]
		fmt.Fprintf(w, "| %s | %s | %s (%+.2f ms) | %s | %s |\n", bp.name, ratio(bp.delivPerS, fp.delivPerS),
			ratio(float64(bp.p99), float64(fp.p99)), float64(bp.p99-fp.p99)/float64(time.Millisecond),
			ratio(bp.cpuPer1000, fp.cpuPer1000), ratio(float64(bp.peakRSSKiB), float64(fp.peakRSSKiB)))
	}

	fmt.Fprintln(w, "\nTargets from this run:")
	for i := range b.phases {
		if i >= len(f.phases) {
			break
		}
		bp, fp := b.phases[i], f.phases[i]
		if bp.rate == 0 {
			r := bp.delivPerS / fp.delivPerS
			fmt.Fprintf(w, "- throughput >= 0.9 x forwarder: %.2f x (%.0f vs %.0f reports/s, %d of %d routed): %s\n",
				r, bp.delivPerS, fp.delivPerS, bp.received, bp.n, verdict(r >= 0.9 && bp.missing == 0))
			if o.statuspage > 0 {
				fmt.Fprintf(w, "- with %d%% bound for the status page, throughput >= 0.8 x forwarder: %.2f x: %s\n",
					o.statuspage, r, verdict(r >= 0.8 && bp.missing == 0))
			}
		} else {
			d := bp.p99 - fp.p99
			fmt.Fprintf(w, "- p99 at %.0f/s within 2 ms of the forwarder's: %s vs %s (%+.2f ms): %s\n",
				bp.rate, ms(bp.p99), ms(fp.p99), float64(d)/float64(time.Millisecond), verdict(d <= 2*time.Millisecond))
			fmt.Fprintf(w, "- peak RSS at %.0f/s under 40 MiB: %s: %s\n", bp.rate, mib(bp.peakRSSKiB), verdict(bp.peakRSSKiB > 0 && bp.peakRSSKiB < 40*1024))
		}
	}
	return code
}

func find(rs []systemResult, name string) *systemResult {
	for i := range rs {
		if rs[i].name == name {
			return &rs[i]
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}
