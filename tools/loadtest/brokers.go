package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// freePort asks the kernel for an unused loopback port. Another process could take it
// before we bind it; on this scale of test that race is accepted.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitPort polls until something accepts on addr, or the deadline passes.
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

// proc is a child process the harness started and must stop.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string // file with its output, shown when it fails
}

func startProc(name, logFile string, env []string, path string, args ...string) (*proc, error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	// If the harness dies without stopping it (a killed pipe, a panic), the kernel ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), log: logFile}
	go func() { cmd.Wait(); out.Close(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks politely (SIGTERM), then kills after grace.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail returns the last lines of the process's output, for an error message.
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

// startMosquitto runs mosquitto from PATH with its own config in dir. The defaults would
// distort the measurement: max_queued_messages 1000 silently drops what a slow consumer
// has not taken yet, and the publisher's in-flight window is max_inflight_messages.
func startMosquitto(ctx context.Context, dir string, inflight int) (*proc, string, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		return nil, "", errors.New("mosquitto not found in PATH (Debian: apt-get install mosquitto)")
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	cfg := strings.Join([]string{
		"listener " + strconv.Itoa(port) + " 127.0.0.1",
		"allow_anonymous true",
		"user root", // started as root it would drop to user mosquitto and fail to write dir
		"log_dest file " + filepath.Join(dir, "mosquitto.log"),
		"log_type error",
		"log_type warning",
		"persistence true",
		"persistence_location " + dir + "/",
		"max_queued_messages 0", // 0 = no limit: nothing is dropped
		"max_queued_bytes 0",
		"max_inflight_messages " + strconv.Itoa(inflight),
		"set_tcp_nodelay true",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		return nil, "", err
	}
	p, err := startProc("mosquitto", filepath.Join(dir, "mosquitto.out"), nil, bin, "-c", conf)
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitPort(ctx, addr, 10*time.Second, p.exited); err != nil {
		p.stop(time.Second)
		return nil, "", fmt.Errorf("mosquitto: %w\n%s", err, p.tail(10))
	}
	return p, "mqtt://" + addr, nil
}

// natsServer is either the Debian nats-server binary (its CPU is then not in our process)
// or, without one, an embedded server.
type natsServer struct {
	proc     *proc
	embedded *natsserver.Server
	url      string
	kind     string
}

// startNATS starts a NATS server, with JetStream (stored in dir) when js is set.
func startNATS(ctx context.Context, dir string, js bool) (*natsServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if bin, err := exec.LookPath("nats-server"); err == nil {
		args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
		if js {
			args = append(args, "-js", "-sd", filepath.Join(dir, "jetstream"))
		}
		p, err := startProc("nats-server", filepath.Join(dir, "nats.log"), nil, bin, args...)
		if err != nil {
			return nil, err
		}
		if err := waitPort(ctx, addr, 10*time.Second, p.exited); err != nil {
			p.stop(time.Second)
			return nil, fmt.Errorf("nats-server: %w\n%s", err, p.tail(10))
		}
		return &natsServer{proc: p, url: "nats://" + addr, kind: natsVersion(bin)}, nil
	}
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: js, StoreDir: filepath.Join(dir, "jetstream")})
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats-server did not start")
	}
	return &natsServer{embedded: s, url: "nats://" + addr, kind: "embedded nats-server " + natsserver.VERSION}, nil
}

func natsVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return bin
	}
	return strings.TrimSpace(string(out)) + " (" + bin + ")"
}

func mosquittoVersion() string {
	out, _ := exec.Command("mosquitto", "-h").CombinedOutput()
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	if sc.Scan() {
		return strings.TrimSpace(sc.Text())
	}
	return "mosquitto"
}

func (n *natsServer) stop() {
	if n == nil {
		return
	}
	if n.proc != nil {
		n.proc.stop(5 * time.Second)
	}
	if n.embedded != nil {
		n.embedded.Shutdown()
	}
}
