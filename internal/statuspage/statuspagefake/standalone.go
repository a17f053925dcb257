package statuspagefake

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"
)

// Start runs a fake outside a test (a load harness); the caller closes it and may read
// Violations. In tests use New, which does both through t.
func Start(opts Options) (*Fake, error) {
	if opts.Version == "" {
		opts.Version = V100
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	spec, err := newSpecValidator()
	if err != nil {
		return nil, fmt.Errorf("statuspagefake: loading the spec: %w", err)
	}
	st := newState()
	if !opts.NoProvision {
		if err := st.provision(provisioningYAML); err != nil {
			return nil, fmt.Errorf("statuspagefake: provisioning: %w", err)
		}
	}
	f := &Fake{opts: opts, spec: spec, state: st, closing: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	return f, nil
}
