// Package procs starts and stops the child processes of the tools' harnesses (mosquitto,
// nats-server, the bridge) on loopback: free ports, waiting for a listener, a process that
// dies with the harness, its output in a file, and the build of the bridge binary.
package procs

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FreePort asks the kernel for an unused loopback port. Another process could take it
// before it is bound; on this scale of test that race is accepted.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitPort polls until something accepts on addr, the process exits or d passes.
func WaitPort(ctx context.Context, addr string, d time.Duration, exited <-chan struct{}) error {
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

// Proc is one run of a child process the harness started and must stop.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Exited chan struct{} // closed when it exited
	Log    string        // the file with its output
}

// Start runs path with args and env (added to the harness's), its output appended to
// logFile after a line naming the start, so that the runs of a restarted process follow
// each other in one file.
func Start(name, logFile string, env []string, path string, args ...string) (*Proc, error) {
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "=== start %s at %s\n", name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	// If the harness dies without stopping it (a killed pipe, a panic), the kernel ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Exited: make(chan struct{}), Log: logFile}
	go func() { cmd.Wait(); out.Close(); close(p.Exited) }()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Running reports whether the process has not exited (false for nil).
func (p *Proc) Running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.Exited:
		return false
	default:
		return true
	}
}

// Signal sends sig and waits up to wait for the exit; it kills after that.
func (p *Proc) Signal(sig syscall.Signal, wait time.Duration) {
	if !p.Running() {
		return
	}
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.Exited:
	case <-time.After(wait):
		_ = p.Cmd.Process.Kill()
		<-p.Exited
	}
}

// Stop asks politely (SIGTERM), then kills after grace.
func (p *Proc) Stop(grace time.Duration) { p.Signal(syscall.SIGTERM, grace) }

// Tail returns the last n lines of the process's output, for an error message.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ModuleRoot is the directory of the zuul-bridge module the tool runs in.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the zuul-bridge module: run the tool with `go run ./tools/...` from the repository")
	}
	return filepath.Dir(gomod), nil
}

// BuildBridge compiles ./cmd/bridge into dir as the container image does (-tags nodemo:
// without the demo's brokers and status page fake).
func BuildBridge(dir string) (string, error) {
	return build(dir, "zuul-bridge", "-tags", "nodemo", "./cmd/bridge")
}

// BuildNATSServer compiles the nats-server of go.mod into dir (the machine's may be older:
// Debian 12 ships 2.9, and the outbox pins its consumers from 2.11 on).
func BuildNATSServer(dir string) (string, error) {
	return build(dir, "nats-server", "github.com/nats-io/nats-server/v2")
}

func build(dir, name string, args ...string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", append([]string{"build", "-o", bin}, args...)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", args[len(args)-1], err, b)
	}
	return bin, nil
}

// MosquittoVersion is the first line of `mosquitto -h`.
func MosquittoVersion() string {
	out, _ := exec.Command("mosquitto", "-h").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
