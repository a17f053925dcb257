package rulewatch

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestDebounce: a burst of events fires once, after it was quiet; two bursts apart fire
// twice; the poll fires without events.
func TestDebounce(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events := make(chan struct{})
	fired := make(chan time.Time, 10)
	go Debounce(ctx, events, 100*time.Millisecond, time.Hour, func() { fired <- time.Now() })
	var last time.Time
	for range 5 {
		events <- struct{}{}
		last = time.Now()
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case at := <-fired:
		if at.Sub(last) < 100*time.Millisecond {
			t.Errorf("fired %v after the last event, before the quiet interval", at.Sub(last))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fire after a burst")
	}
	select {
	case <-fired:
		t.Fatal("one burst fired twice")
	case <-time.After(300 * time.Millisecond):
	}
	events <- struct{}{}
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("no fire after the second burst")
	}

	polled := make(chan struct{}, 10)
	go Debounce(ctx, make(chan struct{}), time.Hour, 50*time.Millisecond, func() { polled <- struct{}{} })
	for range 2 {
		select {
		case <-polled:
		case <-time.After(5 * time.Second):
			t.Fatal("the poll did not fire")
		}
	}
}

// TestConfigMapSwap: the kubelet's update of a ConfigMap volume (a new timestamped
// directory, the ..data symlink renamed over) and a plain write of a file in the
// directory are each noticed.
func TestConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	mustDo(t, os.Mkdir(filepath.Join(dir, "..2026_01_01"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(dir, "..2026_01_01", "rules.yaml"), []byte("v1"), 0o644))
	mustDo(t, os.Symlink("..2026_01_01", filepath.Join(dir, "..data")))
	mustDo(t, os.Symlink("..data/rules.yaml", filepath.Join(dir, "rules.yaml")))
	path := filepath.Join(dir, "rules.yaml")

	var n atomic.Int32
	fired := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := Watch(ctx, path, Options{Debounce: 50 * time.Millisecond, Poll: time.Hour, Changed: func() {
		n.Add(1)
		fired <- struct{}{}
	}})
	mustDo(t, err)
	await := func(what string) {
		t.Helper()
		select {
		case <-fired:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not noticed", what)
		}
	}
	// The kubelet's swap.
	mustDo(t, os.Mkdir(filepath.Join(dir, "..2026_01_02"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(dir, "..2026_01_02", "rules.yaml"), []byte("v2"), 0o644))
	mustDo(t, os.Symlink("..2026_01_02", filepath.Join(dir, "..data_tmp")))
	mustDo(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	mustDo(t, os.RemoveAll(filepath.Join(dir, "..2026_01_01")))
	await("the symlink swap")
	if b, _ := os.ReadFile(path); string(b) != "v2" {
		t.Fatalf("read %q through the link", b)
	}
	time.Sleep(200 * time.Millisecond)
	if got := n.Load(); got != 1 {
		t.Errorf("the swap fired %d times, want once", got)
	}
	// A plain file, written in place.
	plain := filepath.Join(dir, "plain.yaml")
	mustDo(t, os.WriteFile(plain, []byte("a"), 0o644))
	await("creating a plain file")
	f, err := os.OpenFile(plain, os.O_WRONLY|os.O_APPEND, 0)
	mustDo(t, err)
	_, err = f.Write([]byte("b"))
	mustDo(t, err)
	mustDo(t, f.Close())
	await("a write in place")
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
