package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// profiler takes a CPU profile of the bridge over one phase, through its
// /debug/pprof/ endpoints (BRIDGE_HTTP_PPROF), plus the allocations made during the phase
// (the difference of two allocs snapshots, which `go tool pprof -base` shows).
type profiler struct {
	url, prefix string
	start       time.Time
	allocs0     []byte
	cpu         chan error
	stop        chan struct{}
}

// startProfile begins a CPU profile at url; finish stops it. pprof's CPU endpoint takes a
// fixed length, so the profile is requested in one-second pieces until finish and the
// pieces are written as prefix.cpu.N.pprof (`go tool pprof` merges several files).
func startProfile(url, prefix string) *profiler {
	p := &profiler{url: url, prefix: prefix, start: time.Now(), cpu: make(chan error, 1), stop: make(chan struct{})}
	p.allocs0, _ = get(url + "/debug/pprof/allocs")
	go func() {
		var errs []error
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				p.cpu <- errors.Join(errs...)
				return
			default:
			}
			b, err := get(url + "/debug/pprof/profile?seconds=1")
			if err == nil {
				err = os.WriteFile(fmt.Sprintf("%s.cpu.%d.pprof", prefix, i), b, 0o644)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}()
	return p
}

func (p *profiler) finish() error {
	close(p.stop)
	err := <-p.cpu
	b, aerr := get(p.url + "/debug/pprof/allocs")
	if aerr == nil {
		aerr = os.WriteFile(p.prefix+".allocs.pprof", b, 0o644)
	}
	if aerr == nil && p.allocs0 != nil {
		aerr = os.WriteFile(p.prefix+".allocs0.pprof", p.allocs0, 0o644)
	}
	return errors.Join(err, aerr)
}

func get(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s (is BRIDGE_HTTP_PPROF supported by this bridge?)", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// phaseFile names a phase in a file name: "rate" or "max".
func phaseFile(ph phase) string {
	if ph.rate > 0 {
		return "rate"
	}
	return strings.ReplaceAll(ph.name, "/", "-")
}
