package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestHealthzFailsOnceNATSIsClosed: a connection closed for good fails /healthz, so that
// the orchestrator restarts the process; before that it answers 200.
func TestHealthzFailsOnceNATSIsClosed(t *testing.T) {
	h := newHealth(prometheus.NewRegistry())
	srv := httptest.NewServer(h.mux())
	defer srv.Close()
	get := func() (int, string) {
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	if code, _ := get(); code != 200 {
		t.Fatalf("/healthz %d before anything closed", code)
	}
	h.natsClosed(errors.New("nats: maximum control line exceeded"))
	if code, body := get(); code != 503 || !strings.Contains(body, "NATS connection closed") {
		t.Fatalf("/healthz %d %q after NATS closed", code, body)
	}
}
