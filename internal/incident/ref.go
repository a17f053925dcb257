package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// How the bridge knows its own incidents. The status page has no external id or label on
// incidents, and what it shows is read by people, so no machine text goes into it.
//
// With a KeyStore (JetStream key-value) the store is the source: one entry per incident
// key names the open incident and keeps the reports applied to it (replicas.go). The
// texts carry nothing.
//
// Without it, every text the bridge writes ends with one short sentence holding a
// reference, a hash of the bridge id, the route and the key, nothing a reader could
// take for an internal name:
//
//	description:        "Reported automatically (ref 3f2a9c81d0e4)."
//	  after the bridge ended it: "Reported and closed automatically (ref 3f2a9c81d0e4)."
//	failure update:     "Reported automatically (ref 3f2a9c81d0e4)."
//	closing update:     "Closed automatically (ref 3f2a9c81d0e4)."
//
// The first 4 hex digits name the route (matched against the configured routes), the other
// 16 the key: 64 bits, so that keys never share a reference (the reference also names the
// key's state in memory). Reports already applied are recognised after a restart by their time: an
// incident begins at its opening report's time and an update is created at its report's.

// refPattern finds a reference sentence; the last one in a text counts.
var refPattern = regexp.MustCompile(`(Reported automatically|Reported and closed automatically|Closed automatically) \(ref ([0-9a-f]{20})\)\.`)

// refKind says which sentence holds a reference.
type refKind int

const (
	refReported refKind = iota + 1 // an open incident's description, or a failure update
	refClosed                      // the description of an incident the bridge ended
	refClosing                     // the bridge's closing update
)

var refSentences = map[refKind]string{
	refReported: "Reported automatically (ref %s).",
	refClosed:   "Reported and closed automatically (ref %s).",
	refClosing:  "Closed automatically (ref %s).",
}

// refRoom is what a reference sentence takes at most, with the space before it.
const refRoom = 1 + len("Reported and closed automatically (ref 0123456789abcdef0123).")

func refSentence(kind refKind, ref string) string { return fmt.Sprintf(refSentences[kind], ref) }

// withRef appends the reference sentence to a one-paragraph text.
func withRef(text string, kind refKind, ref string) string {
	text = strings.TrimSpace(text)
	if text == "" {
		return refSentence(kind, ref)
	}
	return text + " " + refSentence(kind, ref)
}

// parseRef finds the last reference sentence of text. Text written by people may hold
// anything: what does not match is "no reference".
func parseRef(text string) (ref string, kind refKind, ok bool) {
	all := refPattern.FindAllStringSubmatch(text, -1)
	if len(all) == 0 {
		return "", 0, false
	}
	m := all[len(all)-1]
	switch m[1] {
	case "Reported automatically":
		kind = refReported
	case "Reported and closed automatically":
		kind = refClosed
	default:
		kind = refClosing
	}
	return m[2], kind, true
}

// markClosed rewrites the reference sentence of a description to say that the bridge
// ended the incident; a description without one (edited by a person) gets it appended.
func markClosed(desc, ref string) string {
	idx := refPattern.FindAllStringSubmatchIndex(desc, -1)
	for i := len(idx) - 1; i >= 0; i-- {
		m := idx[i]
		if desc[m[4]:m[5]] == ref {
			return desc[:m[0]] + refSentence(refClosed, ref) + desc[m[1]:]
		}
	}
	return withRef(desc, refClosed, ref)
}

// routeTag is the first part of a reference: the route, within this bridge.
func routeTag(bridgeID, route string) string {
	s := sha256.Sum256([]byte(bridgeID + "\x00route\x00" + route))
	return hex.EncodeToString(s[:])[:4]
}

// refOf is the reference of an incident key: route tag and key tag. It is also the
// name of the key's state in memory.
func refOf(bridgeID, route, hash string) string {
	s := sha256.Sum256([]byte(bridgeID + "\x00key\x00" + hash))
	return routeTag(bridgeID, route) + hex.EncodeToString(s[:])[:16]
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

// reportHash shortens a report ID for the applied set (IDs of old Zuul payloads are long).
func reportHash(id string) string {
	s := sha256.Sum256([]byte(id))
	return hex.EncodeToString(s[:])[:20]
}

// timeToken stands for "a failing report of this time was applied", read back from an
// incident's beganAt and its updates' createdAt (to the second: the server may round).
func timeToken(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return "t" + strconv.FormatInt(t.Unix(), 10)
}

// sameSecond compares two server-side times the way timeToken does.
func sameSecond(a time.Time, b *time.Time) bool {
	return b != nil && !a.IsZero() && a.Unix() == b.Unix()
}

// sanitizeBridgeID keeps the bridge id one token.
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
