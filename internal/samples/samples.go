// Package samples holds real-shaped Zuul MQTT payloads, one per layout and
// case Zuul sends (3.1 to master). Tests read them, and the
// demo replays them through the bridge.
package samples

import (
	"embed"
	"io/fs"
	"sort"
)

//go:embed *.json
var files embed.FS

// Sample is one payload and its file name.
type Sample struct {
	Name    string
	Payload []byte
}

// All returns every sample, sorted by name.
func All() []Sample {
	entries, _ := fs.Glob(files, "*.json")
	sort.Strings(entries)
	out := make([]Sample, 0, len(entries))
	for _, name := range entries {
		b, _ := files.ReadFile(name)
		out = append(out, Sample{Name: name, Payload: b})
	}
	return out
}

// Get returns the payload of the named sample, or nil if there is none.
func Get(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil
	}
	return b
}
