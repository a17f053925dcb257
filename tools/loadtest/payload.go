package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/samples"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// sizeSamples names the sample reports a -sizes mix can draw from.
var sizeSamples = map[string]string{
	"1k":   "periodic-daily_start.json",
	"3.5k": "periodic-daily_failure_mixed.json",
	"110k": "periodic-daily_failure_large_buildset.json",
}

// template is one sample prepared for cheap per-report rewriting: every occurrence of its
// buildset and item uuid is overwritten with the report's unique 32-hex token, and its
// top-level "timestamp" number with the send time, padded with spaces to the same width.
// The bytes are otherwise those of the sample, so the sizes are the real ones.
type template struct {
	name      string
	label     string
	payload   []byte
	uuidAt    []int // offsets of 32-char uuids to overwrite
	tsAt, tsW int   // offset and width of the timestamp number
}

func loadTemplate(label string) (*template, error) {
	file, ok := sizeSamples[label]
	if !ok {
		return nil, fmt.Errorf("-sizes: unknown size %q (have 1k, 3.5k, 110k)", label)
	}
	var raw []byte
	for _, s := range samples.All() {
		if s.Name == file {
			raw = s.Payload
		}
	}
	if raw == nil {
		return nil, fmt.Errorf("sample %s not found", file)
	}
	return newTemplate(file, label, raw)
}

// statuspageProject is the project of the reports a -statuspage run sends to the status
// page route; no other sample has it.
const statuspageProject = "zbench/statuspage"

const statuspageLabel = "3.5k-statuspage"

// statuspageTemplate is the 3.5k failing sample of the project statuspageProject.
func statuspageTemplate(tag uint32) (*template, error) {
	t, err := loadTemplate("3.5k")
	if err != nil {
		return nil, err
	}
	raw := bytes.ReplaceAll(t.payload, []byte("SovereignCloudStack/k8s-cluster-api-provider"), []byte(statuspageProject))
	if t, err = newTemplate(t.name, statuspageLabel, raw); err != nil {
		return nil, err
	}
	return t, t.check(tag)
}

func newTemplate(file, label string, raw []byte) (*template, error) {
	var head struct {
		UUID     string `json:"uuid"`
		Buildset struct {
			UUID string `json:"uuid"`
		} `json:"buildset"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	t := &template{name: file, label: label, payload: raw}
	for _, u := range []string{head.UUID, head.Buildset.UUID} {
		if len(u) != 32 {
			return nil, fmt.Errorf("%s: uuid %q is not 32 characters", file, u)
		}
		q := []byte(`"` + u + `"`)
		for off := 0; ; {
			i := bytes.Index(raw[off:], q)
			if i < 0 {
				break
			}
			t.uuidAt = append(t.uuidAt, off+i+1)
			off += i + len(q)
		}
	}
	// The top-level timestamp is the first "timestamp" key of Zuul's payload.
	i := bytes.Index(raw, []byte(`"timestamp":`))
	if i < 0 {
		return nil, fmt.Errorf("%s: no timestamp", file)
	}
	i += len(`"timestamp":`)
	for raw[i] == ' ' {
		i++
	}
	j := i
	for j < len(raw) && (raw[j] >= '0' && raw[j] <= '9' || raw[j] == '.') {
		j++
	}
	t.tsAt, t.tsW = i, j-i
	if t.tsW < 14 {
		return nil, fmt.Errorf("%s: timestamp field too narrow", file)
	}
	return t, nil
}

// token is the unique 32-hex identity part of report seq of run tag: both the buildset
// and the item uuid, so it is in the bridge's report ID for final and start reports.
func token(tag uint32, seq int) []byte {
	return fmt.Appendf(nil, "%08x%024x", tag, seq)
}

// render returns the payload of report seq sent at t.
func (t *template) render(tag uint32, seq int, at time.Time) []byte {
	p := bytes.Clone(t.payload)
	tok := token(tag, seq)
	for _, off := range t.uuidAt {
		copy(p[off:off+32], tok)
	}
	ts := strconv.FormatFloat(float64(at.UnixNano())/1e9, 'f', 6, 64)
	if len(ts) > t.tsW {
		ts = ts[:t.tsW] // fewer decimals; never shorter than the integer part (checked)
	}
	copy(p[t.tsAt:t.tsAt+t.tsW], ts+strings.Repeat(" ", t.tsW-len(ts)))
	return p
}

// check decodes one rendered payload with the bridge's own decoder: the token must be
// in its identity and the timestamp must be the send time.
func (t *template) check(tag uint32) error {
	at := time.Now()
	ev, err := zuul.Decode(t.render(tag, 12345, at))
	if err != nil {
		return fmt.Errorf("%s after rewriting: %w", t.name, err)
	}
	if !strings.Contains(ev.ID, string(token(tag, 12345))) {
		return fmt.Errorf("%s: report id %q lacks the token", t.name, ev.ID)
	}
	if d := ev.Timestamp.Sub(at); d > time.Millisecond || d < -time.Millisecond {
		return fmt.Errorf("%s: timestamp off by %s", t.name, d)
	}
	return nil
}

// mix is a -sizes weighting such as "1k:45,3.5k:45,110k:10".
type mix struct {
	templates []*template
	weights   []int
}

func parseMix(s string, tag uint32) (*mix, error) {
	m := &mix{}
	for _, part := range strings.Split(s, ",") {
		label, w, ok := strings.Cut(strings.TrimSpace(part), ":")
		weight := 1
		if ok {
			n, err := strconv.Atoi(w)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("-sizes: bad weight in %q", part)
			}
			weight = n
		}
		t, err := loadTemplate(label)
		if err != nil {
			return nil, err
		}
		if err := t.check(tag); err != nil {
			return nil, err
		}
		m.templates = append(m.templates, t)
		m.weights = append(m.weights, weight)
	}
	return m, nil
}

// plan draws the template of each of n reports, the same sequence every run.
func (m *mix) plan(n int, seed uint64) []*template {
	total := 0
	for _, w := range m.weights {
		total += w
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]*template, n)
	for i := range out {
		r := rng.IntN(max(total, 1))
		for j, w := range m.weights {
			if r < w || j == len(m.weights)-1 {
				out[i] = m.templates[j]
				break
			}
			r -= w
		}
	}
	return out
}

func (m *mix) String() string {
	var parts []string
	for i, t := range m.templates {
		parts = append(parts, fmt.Sprintf("%s (%d B) x%d", t.label, len(t.payload), m.weights[i]))
	}
	return strings.Join(parts, ", ")
}
