package filter

// Pattern is one compiled glob of the rules file's syntax (see the package comment), for
// other parts of the rules that match a name: the `components:` entries of a status page
// route match job names with it.
type Pattern struct {
	src string
	g   glob
}

// CompilePattern compiles one glob; an error says what is wrong with it.
func CompilePattern(p string) (*Pattern, error) {
	g, err := compileGlob(p)
	if err != nil {
		return nil, err
	}
	return &Pattern{src: p, g: g}, nil
}

// Match reports whether the pattern matches the whole of s.
func (p *Pattern) Match(s string) bool { return p.g.match(s) }

// String returns the pattern as written.
func (p *Pattern) String() string { return p.src }
