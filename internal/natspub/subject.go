package natspub

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

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
// "opendev%2Eorg/zuul/zuul-jobs". An empty value becomes "_" (a token cannot be empty),
// so the value "_" itself becomes "%5F"; UnescapeToken reverses the mapping.
func EscapeToken(v string) string {
	switch v {
	case "":
		return "_"
	case "_":
		return "%5F"
	}
	if !needsEscaping(v) {
		return v
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(v) + 8)
	for i := 0; i < len(v); {
		c := v[i]
		if c >= utf8.RuneSelf {
			if r, n := utf8.DecodeRuneInString(v[i:]); r != utf8.RuneError || n > 1 {
				b.WriteString(v[i : i+n])
				i += n
				continue
			}
		}
		if needsEscape(c) || c >= utf8.RuneSelf { // the latter: a byte of no valid sequence
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

func needsEscaping(v string) bool {
	for i := 0; i < len(v); i++ {
		if needsEscape(v[i]) {
			return true
		}
	}
	return !utf8.ValidString(v)
}

// needsEscape works on bytes: multi-byte UTF-8 sequences never contain ASCII bytes, so
// they pass unchanged; DEL and the C0 controls and space are escaped. Bytes that are not
// part of a valid UTF-8 sequence are escaped too, so every subject is valid UTF-8.
func needsEscape(c byte) bool {
	return c == '.' || c == '*' || c == '>' || c == '%' || c <= ' ' || c == 0x7f
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// UnescapeToken is the inverse of EscapeToken: "_" is the empty value, and every %XX is
// the byte it encodes.
func UnescapeToken(tok string) (string, error) {
	if tok == "_" {
		return "", nil
	}
	if !strings.Contains(tok, "%") {
		return tok, nil
	}
	b := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		if tok[i] != '%' {
			b = append(b, tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("token %q: truncated escape at byte %d", tok, i)
		}
		hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("token %q: bad escape at byte %d", tok, i)
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
