package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// How the bridge knows its own incidents: the status page has no external id or label on
// incidents, and what it shows is read by people, so no machine text goes into it. The
// KeyStore (JetStream key-value) is the source: one entry per incident key names the open
// incident and keeps the reports applied to it (replicas.go).

// keyOf returns the hash that identifies an incident key (its name in memory, in logs and
// in the key store) and the key's values.
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

// sameSecond compares two server-side times to the second (the server may round).
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
