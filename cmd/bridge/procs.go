package main

import (
	"os"
	"runtime"
)

// defaultProcs is the bridge's GOMAXPROCS unless the GOMAXPROCS variable sets one. The
// bridge is a chain of goroutine hand-offs around network I/O (MQTT read, decode, NATS
// publish and flush, PUBACK), one report at a time; with more than one P, every hand-off
// wakes an idle thread that spins for work, which costs more CPU than the parallelism
// gains. With one P a 3.5 KB report took about a fifth less CPU at 1000 reports/s and the
// flat-out throughput rose (docs/performance.md). One core carries far more than a Zuul
// produces: over 10000 reports/s. (Go's own default, the CPUs or the container's CPU
// limit, is right for parallel work, which this is not.)
const defaultProcs = 1

// limitProcs applies defaultProcs when the environment does not choose.
func limitProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(defaultProcs)
	}
}
