// Package deploy holds the Helm chart; this test runs its offline checks (helm lint,
// rendering with default and all-features values, Kubernetes schema validation with
// tools/k8scheck, values.schema.json and the refused combinations) as part of go test.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"
)

func TestChart(t *testing.T) {
	if testing.Short() {
		t.Skip("chart checks build tools/k8scheck")
	}
	helm, err := exec.LookPath("helm")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		helm = filepath.Join(string(trimNL(gopath)), "bin", "helm")
		if _, err := os.Stat(helm); err != nil {
			testenv.MissingTool(t, "helm is not installed (go install helm.sh/helm/v3/cmd/helm@v3.22.0; .ci/run does)")
		}
	}
	cmd := exec.Command("bash", "check.sh")
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(helm)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/check.sh: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
