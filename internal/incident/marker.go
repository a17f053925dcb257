package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// The status page has no external id or label on incidents, so the bridge
// recognises its own incidents and updates by one marker line at the end of their text:
//
//	zuul-bridge: key=<bridge id>/<key hash> route=<route> report=<report hash> [resolved]
//
// key: sha256 of the route name and the key fields' values, so that after a restart the
// open incident of a key is found again without a local database; bridge id: separates
// several bridge deployments writing to one status page; report: sha256 of the Zuul
// report's ID, so that a redelivered report is recognised even after a restart (the
// incident description carries the opening report, each update its own); resolved: written
// into the description by the bridge's own closing PATCH, so that an incident ended without
// it was ended by a person.
const markerPrefix = "zuul-bridge: "

type marker struct {
	bridge, key, route, report string
	resolved                   bool
}

func (m marker) String() string {
	s := markerPrefix + "key=" + m.bridge + "/" + m.key + " route=" + url.QueryEscape(m.route) + " report=" + m.report
	if m.resolved {
		s += " resolved"
	}
	return s
}

// appendMarker puts the marker on its own line after text.
func appendMarker(text string, m marker) string {
	text = strings.TrimRight(text, "\n ")
	if text == "" {
		return m.String()
	}
	return text + "\n\n" + m.String()
}

// parseMarker finds the last marker line of text. Anything malformed is "no marker": text
// written by people must never make the bridge misbehave.
func parseMarker(text string) (marker, bool) {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, markerPrefix) {
			continue
		}
		var m marker
		for _, f := range strings.Fields(strings.TrimPrefix(line, markerPrefix)) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "key":
				m.bridge, m.key, _ = strings.Cut(v, "/")
			case "route":
				if r, err := url.QueryUnescape(v); err == nil {
					m.route = r
				}
			case "report":
				m.report = v
			case "resolved":
				m.resolved = true
			}
		}
		if m.bridge == "" || m.key == "" {
			return marker{}, false
		}
		return m, true
	}
	return marker{}, false
}

// markDescriptionResolved rewrites the marker of an incident description to say that the
// bridge ended it.
func markDescriptionResolved(desc string) string {
	m, ok := parseMarker(desc)
	if !ok || m.resolved {
		return desc
	}
	old := m.String()
	m.resolved = true
	if i := strings.LastIndex(desc, old); i >= 0 {
		return desc[:i] + m.String() + desc[i+len(old):]
	}
	return appendMarker(desc, m)
}

// keyOf returns the hash that identifies an incident key and the key's values.
func keyOf(route string, fields []string, ev *zuul.Event) (string, map[string]string) {
	h := sha256.New()
	h.Write([]byte(route))
	vals := make(map[string]string, len(fields))
	for _, f := range fields {
		v, _ := ev.Field(f)
		vals[f] = v
		h.Write([]byte{0})
		h.Write([]byte(f + "=" + v))
	}
	return hex.EncodeToString(h.Sum(nil))[:32], vals
}

// reportHash shortens a report ID for the marker (IDs of old Zuul payloads are long).
func reportHash(id string) string {
	s := sha256.Sum256([]byte(id))
	return hex.EncodeToString(s[:])[:20]
}

// sanitizeBridgeID keeps the bridge id one marker token.
func sanitizeBridgeID(id string) string {
	id = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, id)
	if id == "" {
		return "zuul-bridge"
	}
	return id
}
