package logging

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConsoleWithoutTerminalHasNoColour: `bridge demo > demo.log 2>&1` and a pipe get the
// console format without escape codes.
func TestConsoleWithoutTerminalHasNoColour(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	f, err := os.Create(filepath.Join(t.TempDir(), "demo.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	for _, w := range []io.Writer{&buf, f} {
		l := New(w, "console", "debug")
		l.Info().Str("k", "v").Stringer("grace", 20*time.Second).Msg("hello")
		l.Warn().Err(io.EOF).Msg("careful")
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for what, out := range map[string]string{"buffer": buf.String(), "file": string(got)} {
		if !strings.Contains(out, "INF hello") || !strings.Contains(out, "grace=20s") {
			t.Errorf("%s: not the console format: %q", what, out)
		}
		if strings.Contains(out, "\x1b[") {
			t.Errorf("%s: escape codes off a terminal: %q", what, out)
		}
	}
}

// TestConsoleColourOnlyOnTerminalWithoutNoColor: a terminal gets colour unless NO_COLOR is
// set to anything non-empty (https://no-color.org).
func TestConsoleColourOnlyOnTerminalWithoutNoColor(t *testing.T) {
	defer func(f func(io.Writer) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(io.Writer) bool { return true }
	for _, c := range []struct {
		noColor string
		want    bool
	}{{"", true}, {"1", false}, {"yes", false}} {
		t.Setenv("NO_COLOR", c.noColor)
		var buf bytes.Buffer
		l := New(&buf, "console", "info")
		l.Info().Msg("hello")
		if got := strings.Contains(buf.String(), "\x1b["); got != c.want {
			t.Errorf("NO_COLOR=%q on a terminal: coloured %v, want %v: %q", c.noColor, got, c.want, buf.String())
		}
	}
}

func TestJSONAndLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "json", "warn")
	l.Info().Msg("hidden")
	l.Warn().Stringer("retry_in", 1500*time.Millisecond).Msg("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"level":"warn","retry_in":"1.5s"`) {
		t.Fatalf("got %q", out)
	}
}

// TestNoDurFieldsInTheCode: zerolog's .Dur writes a number of milliseconds; durations are
// logged with .Stringer (see the package comment). It finds .Dur( and .Durs( in every
// non-test Go file of the module.
func TestNoDurFieldsInTheCode(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal("module root not found:", err)
	}
	dur := regexp.MustCompile(`(\.|^\s*)Durs?\(`)
	var checked int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "tools") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for i, line := range strings.Split(string(b), "\n") {
			if dur.MatchString(line) {
				t.Errorf("%s:%d: log durations with .Stringer(key, d), not .Dur: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d files: is the walk in the module?", checked)
	}
}
