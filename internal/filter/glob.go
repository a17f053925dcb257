package filter

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// glob is one compiled pattern. We do not use path.Match because its * stops at "/", and
// project names (opendev.org/zuul/zuul-jobs) and branches (stable/2024.1) are full of slashes;
// nor regexp, because a hand-written matcher does not allocate and is several times faster for
// the short patterns rules use.
//
// The pattern is split at its stars into chunks. Every chunk matches a fixed number of
// characters, so the first chunk must match at the start, the last at the end, and each middle
// chunk can be taken at its leftmost position: a later position never leaves more room for the
// chunks after it.
type glob struct {
	chunks []chunk // len >= 1; with star, chunks[0] is the prefix and the last one the suffix
	star   bool    // the pattern holds at least one unescaped *

	// Most rule globs are "lit*", "*lit", "a*b" or "*lit*"; those skip the general loop.
	shape    globShape
	pre, suf string // shapeAffix: the literal before and after the one star
	mid      string // shapeContains
}

type globShape uint8

const (
	shapeGeneral  globShape = iota
	shapeAffix              // pre*suf, either may be empty
	shapeContains           // *mid*
)

type chunk struct {
	toks  []token
	lit   string // the whole chunk when it is only literal text (isLit)
	isLit bool
	runes int // number of characters the chunk matches
}

type tokKind uint8

const (
	tokLit   tokKind = iota // literal text
	tokAny                  // ?
	tokClass                // [...]
)

type token struct {
	kind  tokKind
	lit   string
	class *charClass
}

type charClass struct {
	negated bool
	ranges  []runeRange
}

type runeRange struct{ lo, hi rune }

func (c *charClass) has(r rune) bool {
	for _, rg := range c.ranges {
		if rg.lo <= r && r <= rg.hi {
			return !c.negated
		}
	}
	return c.negated
}

// isMeta reports whether a byte has a meaning in a glob. A pattern without any is compared as
// is, without compiling it.
func isMeta(c byte) bool { return c == '*' || c == '?' || c == '[' || c == '\\' }

func hasMeta(p string) bool {
	for i := 0; i < len(p); i++ {
		if isMeta(p[i]) {
			return true
		}
	}
	return false
}

// compileGlob parses a pattern. The syntax of classes follows path.Match, which Go users know:
// "[" ["!" | "^"] { char | char "-" char } "]", where char is any character except "-", "]"
// and "\", or "\" followed by any character.
func compileGlob(p string) (glob, error) {
	if !utf8.ValidString(p) {
		return glob{}, errors.New("not valid UTF-8")
	}
	var (
		g   glob
		cur chunk
		lit strings.Builder
	)
	flushLit := func() {
		if lit.Len() > 0 {
			s := lit.String()
			cur.toks = append(cur.toks, token{kind: tokLit, lit: s})
			cur.runes += utf8.RuneCountInString(s)
			lit.Reset()
		}
	}
	endChunk := func() {
		flushLit()
		cur.finish()
		g.chunks = append(g.chunks, cur)
		cur = chunk{}
	}
	for i := 0; i < len(p); {
		switch p[i] {
		case '*':
			endChunk()
			g.star = true
			for i < len(p) && p[i] == '*' {
				i++
			}
		case '?':
			flushLit()
			cur.toks = append(cur.toks, token{kind: tokAny})
			cur.runes++
			i++
		case '[':
			cls, n, err := parseClass(p[i+1:])
			if err != nil {
				return glob{}, err
			}
			flushLit()
			cur.toks = append(cur.toks, token{kind: tokClass, class: cls})
			cur.runes++
			i += 1 + n
		case '\\':
			if i+1 == len(p) {
				return glob{}, errors.New(`trailing \`)
			}
			_, w := utf8.DecodeRuneInString(p[i+1:])
			lit.WriteString(p[i+1 : i+1+w])
			i += 1 + w
		default:
			_, w := utf8.DecodeRuneInString(p[i:])
			lit.WriteString(p[i : i+w])
			i += w
		}
	}
	endChunk()
	g.setShape()
	return g, nil
}

func (g *glob) setShape() {
	if !g.star {
		return
	}
	for i := range g.chunks {
		if !g.chunks[i].isLit {
			return
		}
	}
	switch c := g.chunks; {
	case len(c) == 2:
		g.shape, g.pre, g.suf = shapeAffix, c[0].lit, c[1].lit
	case len(c) == 3 && c[0].lit == "" && c[2].lit == "":
		g.shape, g.mid = shapeContains, c[1].lit
	}
}

func (c *chunk) finish() {
	switch {
	case len(c.toks) == 0:
		c.isLit = true
	case len(c.toks) == 1 && c.toks[0].kind == tokLit:
		c.isLit, c.lit = true, c.toks[0].lit
	}
}

// parseClass parses the class after its "[" and returns how many bytes it used, "]" included.
func parseClass(s string) (*charClass, int, error) {
	cls := &charClass{}
	i := 0
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		cls.negated = true
		i++
	}
	for {
		if i >= len(s) {
			return nil, 0, errors.New("unterminated [")
		}
		if s[i] == ']' {
			if len(cls.ranges) == 0 {
				return nil, 0, errors.New("empty []")
			}
			return cls, i + 1, nil
		}
		lo, n, err := classChar(s[i:])
		if err != nil {
			return nil, 0, err
		}
		i += n
		hi := lo
		if i < len(s) && s[i] == '-' {
			i++
			if hi, n, err = classChar(s[i:]); err != nil {
				return nil, 0, err
			}
			i += n
			if hi < lo {
				return nil, 0, fmt.Errorf("range %c-%c out of order", lo, hi)
			}
		}
		cls.ranges = append(cls.ranges, runeRange{lo, hi})
	}
}

func classChar(s string) (rune, int, error) {
	if len(s) == 0 {
		return 0, 0, errors.New("unterminated [")
	}
	switch s[0] {
	case '\\':
		if len(s) == 1 {
			return 0, 0, errors.New("unterminated [")
		}
		r, w := utf8.DecodeRuneInString(s[1:])
		return r, 1 + w, nil
	case '-', ']':
		return 0, 0, fmt.Errorf(`%q inside [] must be escaped with \`, s[0])
	}
	r, w := utf8.DecodeRuneInString(s)
	return r, w, nil
}

// minLen is the length in bytes of the shortest string the glob can match.
func (g *glob) minLen() int {
	n := 0
	for i := range g.chunks {
		for _, t := range g.chunks[i].toks {
			if t.kind == tokLit {
				n += len(t.lit)
			} else {
				n++ // one character, at least one byte
			}
		}
	}
	return n
}

// exact returns the literal text of a pattern without any wildcard (escapes removed).
func (g *glob) exact() (string, bool) {
	if g.star || !g.chunks[0].isLit {
		return "", false
	}
	return g.chunks[0].lit, true
}

func (g *glob) match(s string) bool {
	switch g.shape {
	case shapeAffix:
		return len(s) >= len(g.pre)+len(g.suf) && strings.HasPrefix(s, g.pre) && strings.HasSuffix(s, g.suf)
	case shapeContains:
		return strings.Contains(s, g.mid)
	}
	first := &g.chunks[0]
	n, ok := first.matchAt(s)
	if !ok {
		return false
	}
	if !g.star {
		return n == len(s)
	}
	last := &g.chunks[len(g.chunks)-1]
	end, ok := last.suffixStart(s)
	if !ok || end < n {
		return false
	}
	if m, ok := last.matchAt(s[end:]); !ok || end+m != len(s) {
		return false
	}
	pos := n
	for i := 1; i < len(g.chunks)-1; i++ {
		at, m, ok := g.chunks[i].find(s[pos:end])
		if !ok {
			return false
		}
		pos += at + m
	}
	return true
}

// matchAt matches the chunk at the start of s and returns how many bytes it used.
func (c *chunk) matchAt(s string) (int, bool) {
	if c.isLit {
		return len(c.lit), strings.HasPrefix(s, c.lit)
	}
	n := 0
	for i := range c.toks {
		t := &c.toks[i]
		switch t.kind {
		case tokLit:
			if !strings.HasPrefix(s[n:], t.lit) {
				return 0, false
			}
			n += len(t.lit)
		case tokAny, tokClass:
			if n >= len(s) {
				return 0, false
			}
			r, w := utf8.DecodeRuneInString(s[n:])
			if t.kind == tokClass && !t.class.has(r) {
				return 0, false
			}
			n += w
		}
	}
	return n, true
}

// suffixStart is where the chunk has to start to end exactly at the end of s.
func (c *chunk) suffixStart(s string) (int, bool) {
	if c.isLit {
		return len(s) - len(c.lit), len(c.lit) <= len(s)
	}
	end := len(s)
	for range c.runes {
		if end == 0 {
			return 0, false
		}
		_, w := utf8.DecodeLastRuneInString(s[:end])
		end -= w
	}
	return end, true
}

// find returns the leftmost position where the chunk matches in s and the bytes it used there.
func (c *chunk) find(s string) (at, n int, ok bool) {
	if c.isLit {
		at = strings.Index(s, c.lit)
		return at, len(c.lit), at >= 0
	}
	for at = 0; at <= len(s); {
		if n, ok = c.matchAt(s[at:]); ok {
			return at, n, true
		}
		if at == len(s) {
			break
		}
		_, w := utf8.DecodeRuneInString(s[at:])
		at += w
	}
	return 0, 0, false
}
