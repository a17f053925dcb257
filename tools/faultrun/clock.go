package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// clock is the run's time line: every event is printed as an offset from its start.
type clock struct {
	start time.Time
}

func (c clock) at(t time.Time) string {
	d := t.Sub(c.start).Round(100 * time.Millisecond)
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	return fmt.Sprintf("%s%02d:%04.1f", sign, int(d.Minutes()), (d - d.Truncate(time.Minute)).Seconds())
}

// logf prints a timestamped progress line to stderr.
type logger struct {
	mu sync.Mutex
	c  clock
}

func (l *logger) printf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(os.Stderr, "[%s] %s\n", l.c.at(time.Now()), fmt.Sprintf(format, a...))
}

func natsVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "nats-server: ")
}
