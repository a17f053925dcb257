package filter

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"periodic-*", []string{"periodic-", "periodic-daily", "periodic-x/y"}, []string{"periodic", "xperiodic-daily", "Periodic-daily"}},
		{"*", []string{"", "a", "opendev.org/zuul/zuul-jobs"}, nil},
		{"**", []string{"", "a/b"}, nil},
		{"opendev.org/*", []string{"opendev.org/zuul/zuul-jobs", "opendev.org/"}, []string{"opendev.org", "github.com/opendev.org/x"}},
		{"stable/*", []string{"stable/2024.1", "stable/a/b"}, []string{"stable", "unstable/x"}},
		{"*/zuul-jobs", []string{"opendev.org/zuul/zuul-jobs", "/zuul-jobs"}, []string{"zuul-jobs", "opendev.org/zuul/zuul-jobs2"}},
		{"*FAILURE", []string{"FAILURE", "POST_FAILURE", "NODE_FAILURE"}, []string{"FAILURES", "failure", "SUCCESS"}},
		{"*k8s*", []string{"k8s", "SovereignCloudStack/k8s-cluster-api-provider"}, []string{"k8", "K8S"}},
		{"a*b*c", []string{"abc", "aXbYc", "abbc", "abcbc", "a/b/c"}, []string{"ab", "acb", "abcd", "xabc"}},
		{"a*a", []string{"aa", "aba"}, []string{"a", "ab"}},
		{"a*b*a", []string{"aba", "abba", "abab" + "a"}, []string{"ab", "aab"}},
		{"?", []string{"a", "/", "é", "日"}, []string{"", "ab"}},
		{"stable/202?.?", []string{"stable/2024.1", "stable/2023.2"}, []string{"stable/2024.10", "stable/202.1"}},
		{"*?", []string{"a", "日本"}, []string{""}},
		{"?*?", []string{"ab", "abc"}, []string{"a"}},
		{"[abc]", []string{"a", "c"}, []string{"d", "", "ab"}},
		{"[a-c]x", []string{"ax", "bx", "cx"}, []string{"dx", "x"}},
		{"[!a-c]x", []string{"dx", "/x", "日x"}, []string{"ax", "x"}},
		{"[^a-c]x", []string{"dx"}, []string{"bx"}},
		{"v[0-9].[0-9]*", []string{"v6.1x", "v1.2", "v1.23"}, []string{"v6.x", "v6", "vx.1"}},
		{"[\\]\\-]", []string{"]", "-"}, []string{"\\", "a"}},
		{"[[]", []string{"["}, []string{"]"}},
		{"\\*", []string{"*"}, []string{"a", ""}},
		{"a\\?b", []string{"a?b"}, []string{"axb"}},
		{"x\\[y]", []string{"x[y]"}, []string{"xy"}},
		{"*.*", []string{"a.b", "."}, []string{"ab"}},
		{"日*本", []string{"日本", "日x本"}, []string{"日"}},
		{"*[0-9]", []string{"v1", "1"}, []string{"v", ""}},
		{"[0-9]*[0-9]", []string{"11", "1x1"}, []string{"1", "1x"}},
		{"*x?y*", []string{"axbyc", "xxxy"}, []string{"xy", "axyb"}},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			g, err := compileGlob(tc.pattern)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			for _, s := range tc.yes {
				if !g.match(s) {
					t.Errorf("%q does not match %q, want match", tc.pattern, s)
				}
			}
			for _, s := range tc.no {
				if g.match(s) {
					t.Errorf("%q matches %q, want no match", tc.pattern, s)
				}
			}
		})
	}
}

func TestGlobErrors(t *testing.T) {
	tests := map[string]string{
		"[abc":     "unterminated [",
		"[":        "unterminated [",
		"[]":       "empty []",
		"[!]":      "empty []",
		"[z-a]":    "range z-a out of order",
		"[a-]":     `']' inside [] must be escaped`,
		"[-a]":     `'-' inside [] must be escaped`,
		"x\\":      `trailing \`,
		"[a\\":     "unterminated [",
		"\xff*":    "not valid UTF-8",
		"ok*[a-c":  "unterminated [",
		"[a-\\":    "unterminated [",
		"[\\":      "unterminated [",
		"[a-z]]*[": "unterminated [",
	}
	for p, want := range tests {
		_, err := compileGlob(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("compileGlob(%q) = %v, want error containing %q", p, err, want)
		}
	}
}

// TestExactPatterns checks that a pattern without wildcards (escapes included) is compared
// as a plain string, not compiled into a glob.
func TestExactPatterns(t *testing.T) {
	var p patternSet
	for _, s := range []string{"periodic-daily", `\*`, `a\[b`} {
		if err := p.add(s); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.globs) != 0 || len(p.exact) != 3 || p.exact[1] != "*" || p.exact[2] != "a[b" {
		t.Fatalf("exact = %q, globs = %d", p.exact, len(p.globs))
	}
	// Past smallSet exact patterns the set becomes a map; it must keep all of them.
	for i := range 20 {
		if err := p.add(fmt.Sprintf("p%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if p.set == nil || !p.match("p0") || !p.match("p19") || !p.match("*") || p.match("p20") {
		t.Fatalf("map set broken: %v", p.set)
	}
}

// refRegexp is the reference the fuzzer compares compileGlob against: the same syntax,
// written independently as a translation to a regexp, so the matching itself (the part that
// is easy to get wrong) is checked by the standard library.
func refRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	rs := []rune(p)
	lit := func(r rune) { fmt.Fprintf(&b, `\x{%x}`, r) }
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '\\':
			i++
			if i == len(rs) {
				return nil, fmt.Errorf("trailing backslash")
			}
			lit(rs[i])
		case '[':
			j := i + 1
			b.WriteString("[")
			if j < len(rs) && (rs[j] == '!' || rs[j] == '^') {
				b.WriteString("^")
				j++
			}
			char := func() (rune, error) {
				if j >= len(rs) {
					return 0, fmt.Errorf("unterminated")
				}
				r := rs[j]
				j++
				switch r {
				case '\\':
					if j >= len(rs) {
						return 0, fmt.Errorf("unterminated")
					}
					r = rs[j]
					j++
				case '-', ']':
					return 0, fmt.Errorf("unescaped %c", r)
				}
				return r, nil
			}
			n := 0
			for {
				if j >= len(rs) {
					return nil, fmt.Errorf("unterminated")
				}
				if rs[j] == ']' {
					break
				}
				lo, err := char()
				if err != nil {
					return nil, err
				}
				hi := lo
				if j < len(rs) && rs[j] == '-' {
					j++
					if hi, err = char(); err != nil {
						return nil, err
					}
					if hi < lo {
						return nil, fmt.Errorf("bad range")
					}
				}
				lit(lo)
				b.WriteString("-")
				lit(hi)
				n++
			}
			if n == 0 {
				return nil, fmt.Errorf("empty class")
			}
			b.WriteString("]")
			i = j
		default:
			lit(rs[i])
		}
	}
	b.WriteString(`\z`)
	return regexp.Compile(b.String())
}

func FuzzGlob(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzGlob.
	f.Add("periodic-*", "periodic-daily")
	f.Add("a*b?c[!x-z]", "a//b日c-")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		g, err := compileGlob(pattern)
		if !utf8.ValidString(pattern) {
			if err == nil {
				t.Fatalf("compileGlob(%q) accepted invalid UTF-8", pattern)
			}
			return
		}
		if len(pattern) > 100 {
			if err == nil {
				g.match(s)
			}
			return
		}
		re, rerr := refRegexp(pattern)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("compileGlob(%q) err = %v, reference err = %v", pattern, err, rerr)
		}
		if err != nil {
			return
		}
		got := g.match(s) // must not panic, whatever s holds
		// The same pattern through patternSet, which compares wildcard-free patterns as strings
		// ("" is rejected there, as an empty pattern in the rules file is an error).
		if pattern != "" {
			var set patternSet
			if err := set.add(pattern); err != nil {
				t.Fatalf("patternSet.add(%q): %v", pattern, err)
			}
			if viaSet := set.match(s); viaSet != got {
				t.Fatalf("pattern %q on %q: glob %v, patternSet %v", pattern, s, got, viaSet)
			}
		}
		// Zuul's strings come from JSON, so always valid UTF-8; on invalid input the regexp
		// package and we may split runes differently, and only "no panic" is required.
		// The reference is O(len(pattern)*len(s)) with a large factor (seconds for 10 KB of
		// each), so long inputs, far beyond any rule or Zuul value, are only run, not compared.
		if !utf8.ValidString(s) || len(s) > 400 {
			return
		}
		if want := re.MatchString(s); got != want {
			t.Fatalf("pattern %q on %q: got %v, reference %v (%s)", pattern, s, got, want, re)
		}
	})
}

func TestCompilePattern(t *testing.T) {
	p, err := CompilePattern("scs-check-gx-scs*")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Match("scs-check-gx-scs-main") || !p.Match("scs-check-gx-scs") || p.Match("x-scs-check-gx-scs") {
		t.Error("scs-check-gx-scs* matches wrongly")
	}
	if _, err := CompilePattern("[abc"); err == nil {
		t.Error("a bad glob compiled")
	}
}
