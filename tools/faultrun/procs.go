package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The process helpers are small copies of tools/loadtest's (a package main cannot be
// imported): free loopback ports, a child process that dies with the harness, and the
// builds of the bridge and of a current nats-server.

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitPort polls until something accepts on addr, the process exits or d passes.
func waitPort(ctx context.Context, addr string, d time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing listens after %s", addr, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("%s: the process exited before listening", addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// proc is one run of a child process; its output is appended to log, so that the runs of
// a restarted process follow each other in one file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func startProc(name, logFile string, env []string, path string, args ...string) (*proc, error) {
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "=== faultrun: start %s at %s\n", name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	// If the harness dies without stopping it, the kernel ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), log: logFile}
	go func() { cmd.Wait(); out.Close(); close(p.exited) }()
	return p, nil
}

func (p *proc) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig and waits (up to wait) for the exit; it kills after that.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *proc) stop(grace time.Duration) { p.signal(syscall.SIGTERM, grace) }

func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the zuul-bridge module: run `go run ./tools/faultrun` from the repository")
	}
	return filepath.Dir(gomod), nil
}

// buildBridge compiles ./cmd/bridge as the container image does (-tags nodemo).
func buildBridge(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "zuul-bridge")
	cmd := exec.Command("go", "build", "-tags", "nodemo", "-o", bin, "./cmd/bridge")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bridge: %w\n%s", err, b)
	}
	return bin, nil
}

// buildNATSServer compiles the nats-server of go.mod (the outbox needs >= 2.11 for its
// pinned consumer; Debian's is 2.9).
func buildNATSServer(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build nats-server: %w\n%s", err, b)
	}
	return bin, nil
}

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

func mosquittoVersion() string {
	out, _ := exec.Command("mosquitto", "-h").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func natsVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "nats-server: ")
}
