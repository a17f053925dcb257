package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Under CI=true a missing tool fails the test; otherwise it skips it.
func TestMissingTool(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		MissingTool(t, "frobnicator is not installed")
		return
	}
	for _, c := range []struct {
		ci       string
		wantFail bool
		wantOut  string
	}{{"true", true, "--- FAIL"}, {"", false, "--- SKIP"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingTool$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.wantFail || !strings.Contains(string(out), c.wantOut) || !strings.Contains(string(out), "frobnicator") {
			t.Errorf("CI=%q: err %v, want failure %v and %q in:\n%s", c.ci, err, c.wantFail, c.wantOut, out)
		}
	}
}
