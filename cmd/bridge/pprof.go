package main

import (
	"net/http"
	"net/http/pprof"
)

// handlePprof serves Go's profiling endpoints under /debug/pprof/ when BRIDGE_HTTP_PPROF
// is true: CPU and allocation profiles of a running bridge, e.g.
// `go tool pprof http://ADDR/debug/pprof/profile?seconds=10`. Off by default: a profile
// costs CPU while it runs and shows the program's internals to whoever reaches the port.
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
