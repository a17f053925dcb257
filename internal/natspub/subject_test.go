package natspub

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func TestEscapeToken(t *testing.T) {
	cases := map[string]string{
		"":                           "_",
		"_":                          "%5F",
		"a_b":                        "a_b",
		"periodic-daily":             "periodic-daily",
		"opendev.org/zuul/zuul-jobs": "opendev%2Eorg/zuul/zuul-jobs",
		"a*b>c":                      "a%2Ab%3Ec",
		"with space\tand\nnewline":   "with%20space%09and%0Anewline",
		"100%":                       "100%25",
		"maintained/v6.x":            "maintained/v6%2Ex",
		"grüße":                      "grüße",
	}
	for in, want := range cases {
		if got := EscapeToken(in); got != want {
			t.Errorf("EscapeToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSubjectRender(t *testing.T) {
	s, err := CompileSubject("zuul.{tenant}.{pipeline}.{project}.{branch}.{result}")
	if err != nil {
		t.Fatal(err)
	}
	ev := &zuul.Event{Tenant: "scs", Pipeline: "periodic-daily", Project: "opendev.org/zuul/zuul-jobs", Branch: "stable/2024.1", Result: "FAILURE", Outcome: zuul.OutcomeFailure}
	got := s.Render(ev)
	if want := "zuul.scs.periodic-daily.opendev%2Eorg/zuul/zuul-jobs.stable/2024%2E1.FAILURE"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := strings.Count(got, "."); n != 5 {
		t.Fatalf("%d levels", n+1)
	}
}

func TestCompileSubjectErrors(t *testing.T) {
	for _, tmpl := range []string{"", "zuul..{tenant}", "zuul.{tenant}.", ".zuul", "zuul.*", "zuul.>", "zuul.{nope}", "zuul.{tenant", "zu ul.{tenant}", "zuul.}x"} {
		if _, err := CompileSubject(tmpl); err == nil {
			t.Errorf("CompileSubject(%q) accepted", tmpl)
		}
	}
}

// FuzzEscapeToken: whatever the value, the token adds no level, no wildcard, no
// whitespace, and can be decoded back (so two values never share a token); a subject
// built from it as a project name either passes CheckSubject with the template's levels
// intact, or is refused for its length only.
func FuzzEscapeToken(f *testing.F) {
	for _, s := range []string{"", "_", "%5F", "opendev.org/zuul/zuul-jobs", "a*b>c", "x y", "100%", "\x00\x7f", "grüße",
		strings.Repeat("a", 5000), strings.Repeat(".", 400), "\xff\xfe", "a\r\nPUB x 1\r\n"} {
		f.Add(s)
	}
	subj, err := CompileSubject(DefaultSubject)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok := EscapeToken(v)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("token %q of %q", tok, v)
		}
		back, err := UnescapeToken(tok)
		if err != nil || back != v {
			t.Fatalf("token %q of %q decodes to %q, %v", tok, v, back, err)
		}
		if v != "" {
			if back, err := url.PathUnescape(tok); err != nil || back != v {
				t.Fatalf("token %q of %q: PathUnescape gives %q, %v", tok, v, back, err)
			}
		}
		ev := &zuul.Event{Tenant: "scs", Pipeline: "periodic-daily", Project: v, Result: "FAILURE", Outcome: zuul.OutcomeFailure}
		s := subj.Render(ev)
		if err := CheckSubject(s); err != nil {
			if len(s) <= MaxSubjectBytes || !errors.Is(err, ErrBadSubject) {
				t.Fatalf("subject %q of project %q refused: %v", s, v, err)
			}
			return
		}
		if n := strings.Count(s, "."); n != 4 {
			t.Fatalf("subject %q of project %q has %d levels", s, v, n+1)
		}
		if got, _ := UnescapeToken(strings.Split(s, ".")[3]); got != v {
			t.Fatalf("project token of %q decodes to %q", s, got)
		}
	})
}

func TestCheckSubject(t *testing.T) {
	for _, s := range []string{"", "a..b", "a.", ".a", "a b", "a\x00", strings.Repeat("x", MaxSubjectBytes+1), "a.\xff"} {
		if err := CheckSubject(s); !errors.Is(err, ErrBadSubject) {
			t.Errorf("CheckSubject(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"a", "zuul.scs.p.o/x.FAILURE", strings.Repeat("x", MaxSubjectBytes), "zuul.grüße"} {
		if err := CheckSubject(s); err != nil {
			t.Errorf("CheckSubject(%q) = %v", s, err)
		}
	}
}
