// Package rulewatch tells when a mounted file may have changed: it watches the file's
// directory (not the file: a Kubernetes ConfigMap volume replaces the file by swapping the
// `..data` symlink, and a watch on the old file would see nothing), and calls back once per
// burst of events, after the burst was quiet for a debounce interval. It does not read the
// file: the callback compares the content (a change to another file of the directory, or
// a burst that ended where it began, costs one read).
//
//	dir/rules.yaml -> ..data/rules.yaml
//	dir/..data     -> ..2026_01_02_03_04_05.123     (renamed over atomically by the kubelet)
package rulewatch

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options configure Watch; zero values get the documented defaults.
type Options struct {
	// Debounce is how long the events must be quiet before Changed is called; <= 0 = 500ms.
	Debounce time.Duration
	// Poll calls Changed this often whatever the events say, in case an event was missed
	// (the watched directory itself replaced, an overflowing event queue); <= 0 = 1m.
	Poll time.Duration
	// Changed is called from Watch's goroutine, one call at a time.
	Changed func()
	// Error is told about watcher errors (nil: ignored); watching goes on.
	Error func(error)
}

func (o *Options) defaults() {
	if o.Debounce <= 0 {
		o.Debounce = 500 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = time.Minute
	}
	if o.Error == nil {
		o.Error = func(error) {}
	}
}

// Watch watches the directory of path until ctx is done. An error means the directory
// cannot be watched (it is returned before anything is called).
func Watch(ctx context.Context, path string, o Options) error {
	o.defaults()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("rules file watch: %w", err)
	}
	dir := filepath.Dir(path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("rules file watch: %s: %w", dir, err)
	}
	events := make(chan struct{}, 1)
	go func() {
		defer w.Close()
		Debounce(ctx, events, o.Debounce, o.Poll, o.Changed)
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Remove|fsnotify.Rename) == 0 {
					continue // chmod: the content is the same
				}
				select {
				case events <- struct{}{}:
				default: // one pending is enough: the debounce reads the file once
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				o.Error(err)
				select { // an overflow may have lost events: look anyway
				case events <- struct{}{}:
				default:
				}
			}
		}
	}()
	return nil
}

// Debounce calls fire once after each burst of signals on events, when no signal came
// for quiet, and every poll besides (a burst pending then fires at its own time). It
// returns when ctx is done.
func Debounce(ctx context.Context, events <-chan struct{}, quiet, poll time.Duration, fire func()) {
	timer := time.NewTimer(quiet)
	timer.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-events:
			pending = true
			timer.Reset(quiet)
		case <-timer.C:
			pending = false
			fire()
		case <-tick.C:
			if !pending {
				fire()
			}
		}
	}
}
