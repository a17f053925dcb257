package natspub

import (
	"net/url"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

func TestEscapeToken(t *testing.T) {
	cases := map[string]string{
		"":                           "_",
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
// whitespace, and can be decoded back (so two values never share a token).
func FuzzEscapeToken(f *testing.F) {
	for _, s := range []string{"", "opendev.org/zuul/zuul-jobs", "a*b>c", "x y", "100%", "\x00\x7f", "grüße"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok := EscapeToken(v)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("token %q of %q", tok, v)
		}
		if v == "" {
			return
		}
		back, err := url.PathUnescape(tok)
		if err != nil || back != v {
			t.Fatalf("token %q of %q decodes to %q, %v", tok, v, back, err)
		}
	})
}
