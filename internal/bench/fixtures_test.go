package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/rules"
	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
)

// sizes are the sample reports of three sizes: a start report (1 KB), a failure with a few
// builds (3.5 KB) and a failure of a 120-build buildset (110 KB).
var sizes = []struct{ label, file string }{
	{"1KB", "periodic-daily_start.json"},
	{"3.5KB", "periodic-daily_failure_mixed.json"},
	{"110KB", "periodic-daily_failure_large_buildset.json"},
}

func payload(b *testing.B, file string) []byte {
	b.Helper()
	for _, s := range samples.All() {
		if s.Name == file {
			return s.Payload
		}
	}
	b.Fatalf("sample %s not found", file)
	return nil
}

// rulesN(50) is a rules file of 50 routes the way operators write them: exact names, globs
// and lists, excludes, routes that reject on the first field and routes that must walk
// every build. Against each sample exactly one matches (the catch-all of periodic-daily), so
// the hot path builds one message; the other 49 reject it at some field.
// rulesN is that rules file with n routes: the catch-all and n-1 of the others, in the same
// rotation (n = 1 is the catch-all alone).
func rulesN(n int) []byte {
	routes := []string{`  - name: catch-all
    match:
      pipeline: periodic-daily
    nats: {subject: "zuul.{tenant}.{pipeline}.{project}.{result}"}
`}
	for i := 0; len(routes) < n; i++ {
		for _, tmpl := range []string{`  - name: periodic-project-%[1]d
    match:
      pipeline: [periodic-daily, periodic-hourly, periodic-weekly]
      project: [SovereignCloudStack/project-%[1]d, "SovereignCloudStack/k8s-cluster-api-provider-%[1]d"]
      result: [failure]
    nats: {subject: "zuul.{tenant}.{pipeline}.{project}.{result}"}
`, `  - name: glob-project-%[1]d
    match:
      pipeline: ["periodic-*", compliance_check]
      project: ["SovereignCloudStack/*-%[1]d"]
    exclude:
      branch: ["stable/*"]
    nats: {subject: "zuul.glob.{project}"}
`, `  - name: other-tenant-%[1]d
    match:
      tenant: tenant-%[1]d
      pipeline: [check, gate]
    nats: {subject: "zuul.{tenant}.{pipeline}"}
`, `  - name: job-results-%[1]d
    match:
      pipeline: periodic-daily
      job: ["scs-compliance-%[1]d-*", "*-e2e-%[1]d"]
      result: [POST_FAILURE, NODE_FAILURE, "*TIMED_OUT"]
    exclude:
      branch: ["stable/*"]
      action: dequeue
    nats: {subject: "zuul.jobs.{project}"}
`, `  - name: final-reports-%[1]d
    match:
      pipeline: [periodic-daily-%[1]d, compliance_check]
      result: [success, failure]
    exclude:
      job: noisy-job-%[1]d
    nats: {subject: "zuul.final.{tenant}.{project}"}
`} {
			if len(routes) < n {
				routes = append(routes, fmt.Sprintf(tmpl, i))
			}
		}
	}
	return []byte("routes:\n" + strings.Join(routes, ""))
}

// route is a parsed route with its compiled subject, as the bridge builds them at start.
type route struct {
	rules.Route
	subject *natspub.Subject
}

func loadRoutes(b *testing.B) []route { return loadRoutesN(b, 50) }

func loadRoutesN(b *testing.B, n int) []route {
	b.Helper()
	rs, err := rules.Parse(fmt.Sprintf("bench-%d-routes.yaml", n), rulesN(n))
	if err != nil {
		b.Fatal(err)
	}
	if len(rs) != n {
		b.Fatalf("%d routes, want %d", len(rs), n)
	}
	out := make([]route, len(rs))
	for i, r := range rs {
		s, err := natspub.CompileSubject(r.NATS.Subject)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = route{Route: r, subject: s}
	}
	return out
}
