// Package testenv holds what the tests of several packages share: what a test does when
// a tool it needs is not installed, and a log buffer safe for concurrent use.
package testenv

import (
	"os"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true, as CI systems set it).
func InCI() bool { return os.Getenv("CI") == "true" }

// MissingTool skips t because a tool it needs is not installed, saying so, or fails
// it under CI=true: CI installs every tool, so there a skip would only hide the test.
func MissingTool(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI=true: a missing tool fails the test instead of skipping it)", why)
	}
	t.Skip(why)
}
