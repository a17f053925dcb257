package filter

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Patterns accepts a YAML scalar ("periodic-*") or a sequence of scalars; a list means "any of".
// Null, an empty string, an empty list, a map and a list inside the list are errors: each of them
// is a likely mistake that would otherwise widen or empty a route without a word.
type Patterns []string

// UnmarshalYAML implements yaml.Unmarshaler. Its errors are a *yaml.TypeError, so the decoder
// goes on and reports every bad value of the file at once, each with its line.
//
// yaml.v3 does not call it for a null value (the field then simply stays unset); Spec's
// UnmarshalYAML catches "pipeline:" and "pipeline: null".
func (p *Patterns) UnmarshalYAML(n *yaml.Node) error {
	out, errs := parsePatterns(n, "")
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	*p = out
	return nil
}

// specKeys lists the keys of a block in the order errors and explanations name them.
var specKeys = []string{"tenant", "pipeline", "project", "branch", "action", "result", "job"}

func (s *Spec) field(key string) *Patterns {
	switch key {
	case "tenant":
		return &s.Tenant
	case "pipeline":
		return &s.Pipeline
	case "project":
		return &s.Project
	case "branch":
		return &s.Branch
	case "action":
		return &s.Action
	case "result":
		return &s.Result
	case "job":
		return &s.Job
	}
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler. It walks the mapping itself rather than
// decoding into the struct, because only here is a null value visible, and because a custom
// unmarshaler's node.Decode would drop the caller's KnownFields(true): unknown and duplicate
// keys are rejected here whatever the decoder's settings.
func (s *Spec) UnmarshalYAML(n *yaml.Node) error {
	*s = Spec{}
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: want a mapping of field: pattern(s) (fields: %s), got %s",
			n.Line, strings.Join(specKeys, ", "), kindName(n))}}
	}
	var errs []string
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		dst := s.field(k.Value)
		if k.Kind != yaml.ScalarNode || dst == nil {
			errs = append(errs, fmt.Sprintf("line %d: unknown field %q (fields: %s)",
				k.Line, k.Value, strings.Join(specKeys, ", ")))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			errs = append(errs, fmt.Sprintf("line %d: %s: already set at line %d", k.Line, k.Value, line))
			continue
		}
		seen[k.Value] = k.Line
		p, perrs := parsePatterns(v, k.Value+": ")
		errs = append(errs, perrs...)
		*dst = p
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// parsePatterns reads a scalar or a list of scalars. Every error starts with the line and
// prefix (the field name and ": ", or "").
func parsePatterns(n *yaml.Node, prefix string) (Patterns, []string) {
	n = deref(n)
	var errs []string
	bad := func(at *yaml.Node, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("line %d: %s", at.Line, prefix)+fmt.Sprintf(format, args...))
	}
	scalar := func(e *yaml.Node) (string, bool) {
		switch {
		case e.Kind == yaml.MappingNode:
			bad(e, "a map is not a pattern; want a pattern or a list of patterns")
		case e.Kind == yaml.SequenceNode:
			bad(e, "a list inside a list is not allowed; write one flat list")
		case e.Kind != yaml.ScalarNode:
			bad(e, "want a pattern, got %s", kindName(e))
		case e.ShortTag() == "!!null":
			bad(e, "null is not a pattern (leave the field out to match every value)")
		case e.Value == "":
			bad(e, "empty pattern")
		default:
			return e.Value, true
		}
		return "", false
	}
	switch n.Kind {
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			bad(n, "empty list (leave the field out to match every value)")
			return nil, errs
		}
		out := make(Patterns, 0, len(n.Content))
		for _, e := range n.Content {
			if v, ok := scalar(deref(e)); ok {
				out = append(out, v)
			}
		}
		return out, errs
	case yaml.MappingNode:
		bad(n, "a map is not a pattern; want a pattern or a list of patterns")
		return nil, errs
	}
	if v, ok := scalar(n); ok {
		return Patterns{v}, errs
	}
	return nil, errs
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.DocumentNode:
		return "a document"
	}
	return "an alias"
}
