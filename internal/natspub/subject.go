package natspub

import (
	"errors"
	"fmt"
	"strings"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Subject is a compiled subject template such as "zuul.{tenant}.{pipeline}.{project}.{result}".
// Literal text is copied, each {field} is replaced by the escaped event field
// (zuul.Event.Field), so a value can never add a level or a wildcard.
type Subject struct {
	parts []subjectPart
}

type subjectPart struct {
	literal string
	field   string // "" for a literal part
}

// CompileSubject parses and checks a template. The literal parts must form valid subject
// tokens: no spaces, no empty tokens, no wildcards.
func CompileSubject(tmpl string) (*Subject, error) {
	if tmpl == "" {
		return nil, errors.New("empty subject")
	}
	s := &Subject{}
	rest := tmpl
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			s.parts = append(s.parts, subjectPart{literal: rest})
			break
		}
		if i > 0 {
			s.parts = append(s.parts, subjectPart{literal: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("subject %q: unclosed {", tmpl)
		}
		name := rest[i+1 : i+j]
		if _, ok := (&zuul.Event{}).Field(name); !ok {
			return nil, fmt.Errorf("subject %q: unknown field {%s} (fields: %s)", tmpl, name, strings.Join(zuul.FieldNames, ", "))
		}
		s.parts = append(s.parts, subjectPart{field: name})
		rest = rest[i+j+1:]
	}
	// Check the shape with a placeholder for every field: the literal text decides
	// whether tokens are empty or hold wildcards.
	probe := s.render(func(string) string { return "x" })
	for _, tok := range strings.Split(probe, ".") {
		switch {
		case tok == "":
			return nil, fmt.Errorf("subject %q: empty token (two dots, or a dot at an end)", tmpl)
		case tok == "*" || tok == ">" || strings.ContainsAny(tok, "*>"):
			return nil, fmt.Errorf("subject %q: wildcards are for subscribers, not for a publish subject", tmpl)
		case strings.ContainsFunc(tok, isSpaceOrControl):
			return nil, fmt.Errorf("subject %q: whitespace or control character", tmpl)
		case strings.ContainsAny(tok, "{}"):
			return nil, fmt.Errorf("subject %q: stray brace", tmpl)
		}
	}
	return s, nil
}

// Render fills the template from the event.
func (s *Subject) Render(ev *zuul.Event) string {
	return s.render(func(name string) string {
		v, _ := ev.Field(name)
		return EscapeToken(v)
	})
}

func (s *Subject) render(value func(string) string) string {
	var b strings.Builder
	for _, p := range s.parts {
		if p.field == "" {
			b.WriteString(p.literal)
		} else {
			b.WriteString(value(p.field))
		}
	}
	return b.String()
}

// EscapeToken makes one subject token of a value. The characters that would change the
// subject's shape are percent-encoded: '.', '*', '>', whitespace, control characters, and
// '%' itself (so the mapping is reversible and two values never share a token). Everything
// else, including '/', is kept: "opendev.org/zuul/zuul-jobs" becomes
// "opendev%2Eorg/zuul/zuul-jobs". An empty value becomes "_".
func EscapeToken(v string) string {
	if v == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(v); i++ {
		if needsEscape(v[i]) {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(v) + 8)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// needsEscape works on bytes: multi-byte UTF-8 sequences never contain ASCII bytes, so
// they pass unchanged; DEL and the C0 controls and space are escaped.
func needsEscape(c byte) bool {
	return c == '.' || c == '*' || c == '>' || c == '%' || c <= ' ' || c == 0x7f
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
