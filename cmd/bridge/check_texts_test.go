package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
)

// TestCheckShowsPublicTexts: `bridge check` prints the exact texts a report puts on the
// status page: title, description and update of a failure (the non-voting failure left
// out), the closing update of a success; plain words, no route name, no result code.
func TestCheckShowsPublicTexts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	writeFile(t, rules, []byte(`routes:
  - name: capi-nightly-internal
    match:
      pipeline: periodic-daily
      project: SovereignCloudStack/k8s-cluster-api-provider
    statuspage:
      component: Zuul
`))
	var files []string
	for _, name := range []string{"periodic-daily_failure_mixed.json", "periodic-daily_success.json"} {
		f := filepath.Join(dir, name)
		writeFile(t, f, samples.Get(name))
		files = append(files, f)
	}
	cmd := exec.Command(bridgeBin, append([]string{"check", "-rules", rules}, files...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{
		"      title:                       Nightly checks of SovereignCloudStack/k8s-cluster-api-provider (periodic-daily, main)\n",
		"      description:                 Nightly checks of SovereignCloudStack/k8s-cluster-api-provider on branch main started failing " +
			"on 14 Jan 2025 at 04:19 UTC: k8s-cluster-api-provider-e2e-conformance failed. " +
			"Details: https://zuul.sovereignit.cloud/t/scs/buildset/22799888a7ae82e51b19a6124a096841\n",
		"      update title:                Still failing\n",
		"      update:                      Failed again at 04:19 UTC, 2 nights in a row. Details: https://zuul.sovereignit.cloud/t/scs/buildset/",
		"      closing update title:        Resolved\n",
		"      closing update:              Passing again since ",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("check output lacks %q:\n%s", want, s)
		}
	}
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "      ") || !strings.Contains(line, ":  ") {
			continue
		}
		_, text, _ := strings.Cut(line, ":  ")
		for _, bad := range []string{"capi-nightly-internal", "FAILURE", "compliance", "zuul-bridge", "automatically"} {
			if strings.Contains(text, bad) {
				t.Errorf("public text holds %q: %s", bad, line)
			}
		}
	}
}
