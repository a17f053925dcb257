package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// Every size of the mix rewrites into a report the bridge decodes, with the token in its
// identity and the send time in its timestamp, at the sample's exact size.
func TestTemplatesRender(t *testing.T) {
	const tag = 0xdeadbeef
	for label := range sizeSamples {
		tmpl, err := loadTemplate(label)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Unix(1763773000, 123456000)
		p := tmpl.render(tag, 42, at)
		if len(p) != len(tmpl.payload) {
			t.Errorf("%s: %d bytes, sample has %d", label, len(p), len(tmpl.payload))
		}
		ev, err := zuul.Decode(p)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if tok := string(token(tag, 42)); !strings.Contains(ev.ID, tok) || ev.BuildsetUUID != tok {
			t.Errorf("%s: id %q, buildset %q: want token %s", label, ev.ID, ev.BuildsetUUID, tok)
		}
		if d := ev.Timestamp.Sub(at); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s: timestamp %s, want %s", label, ev.Timestamp, at)
		}
	}
}

func TestParseMix(t *testing.T) {
	m, err := parseMix("1k:3,110k:1", 1)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, tm := range m.plan(4000, 1) {
		n[tm.label]++
	}
	if n["1k"] < 2800 || n["1k"] > 3200 || n["1k"]+n["110k"] != 4000 {
		t.Errorf("plan drew %v, want about 3000 1k and 1000 110k", n)
	}
	if _, err := parseMix("2k", 1); err == nil {
		t.Error("unknown size accepted")
	}
}

func TestProcReaders(t *testing.T) {
	pid := os.Getpid()
	if _, err := cpuSeconds(pid); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"VmRSS", "VmHWM"} {
		if v, err := memKiB(pid, k); err != nil || v <= 0 {
			t.Fatalf("%s: %d, %v", k, v, err)
		}
	}
}
