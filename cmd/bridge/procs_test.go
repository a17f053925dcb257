package main

import (
	"runtime"
	"testing"
)

// The bridge runs on one P unless GOMAXPROCS says otherwise.
func TestLimitProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })

	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(2)
	limitProcs()
	if got := runtime.GOMAXPROCS(0); got != defaultProcs {
		t.Errorf("GOMAXPROCS unset: %d Ps, want %d", got, defaultProcs)
	}

	t.Setenv("GOMAXPROCS", "2")
	runtime.GOMAXPROCS(2)
	limitProcs()
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("GOMAXPROCS=2: %d Ps, want the environment's 2", got)
	}
}
