package mqtttest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/testenv"
)

// MosquittoOptions configures StartMosquitto.
type MosquittoOptions struct {
	// Username and Password, if set, are the only accepted credentials
	// (password_file); otherwise anonymous clients are allowed.
	Username, Password string
	// TLS, if set, adds a TLS listener (see TLSURL) next to the plain one.
	TLS *MosquittoTLS
	// MaxInflight is max_inflight_messages (0 = mosquitto's default, 20).
	MaxInflight int
}

// MosquittoTLS are the PEM files of the TLS listener.
type MosquittoTLS struct {
	CertFile, KeyFile, CAFile string
	RequireClientCert         bool // clients must present a certificate signed by CAFile
}

// Mosquitto is a mosquitto process with its own config, port and
// persistence directory.
type Mosquitto struct {
	bin, dir, conf string
	port, tlsPort  int
	mu             sync.Mutex
	cmd            *exec.Cmd
	exited         chan struct{}
}

// StartMosquitto runs the mosquitto binary from PATH (or /usr/sbin) on a free
// port and stops it on Cleanup. It skips the test if mosquitto is missing, or
// fails it under CI=true.
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			testenv.MissingTool(t, "mosquitto not found in PATH or /usr/sbin (install the Debian package mosquitto to run this test)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	m := &Mosquitto{bin: bin, dir: t.TempDir(), port: freePort(t)}
	if opts.TLS != nil {
		m.tlsPort = freePort(t)
	}
	m.conf = filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(m.config(t, opts)), 0o600); err != nil {
		t.Fatalf("mqtttest: write mosquitto.conf: %v", err)
	}
	t.Cleanup(func() { m.Stop(t) })
	m.start(t)
	return m
}

func (m *Mosquitto) config(t testing.TB, o MosquittoOptions) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("persistence true")
	line("persistence_location %s/", m.dir)
	line("autosave_interval 1")
	// Debian's default of 1000 queued messages per client silently drops the rest.
	line("max_queued_messages 0")
	if o.MaxInflight > 0 {
		line("max_inflight_messages %d", o.MaxInflight)
	}
	// Started as root, mosquitto would switch to user mosquitto and then be
	// unable to write to the test's directory.
	line("user root")
	line("log_dest file %s", filepath.Join(m.dir, "mosquitto.log"))
	line("log_type error")
	line("log_type warning")
	line("log_type notice")
	line("log_type information")
	line("connection_messages true")
	if o.Username != "" {
		pwfile := filepath.Join(m.dir, "passwd")
		if err := os.WriteFile(pwfile, nil, 0o600); err != nil {
			t.Fatalf("mqtttest: %v", err)
		}
		if out, err := exec.Command("mosquitto_passwd", "-b", pwfile, o.Username, o.Password).CombinedOutput(); err != nil {
			t.Fatalf("mqtttest: mosquitto_passwd: %v: %s", err, out)
		}
		line("allow_anonymous false")
		line("password_file %s", pwfile)
	} else {
		line("allow_anonymous true")
	}
	line("listener %d 127.0.0.1", m.port)
	if o.TLS != nil {
		line("listener %d 127.0.0.1", m.tlsPort)
		line("certfile %s", o.TLS.CertFile)
		line("keyfile %s", o.TLS.KeyFile)
		if o.TLS.CAFile != "" {
			line("cafile %s", o.TLS.CAFile)
		}
		if o.TLS.RequireClientCert {
			line("require_certificate true")
		}
	}
	return b.String()
}

// URL is mqtt://127.0.0.1:port of the plain listener.
func (m *Mosquitto) URL() string { return fmt.Sprintf("mqtt://127.0.0.1:%d", m.port) }

// TLSURL is mqtts://127.0.0.1:port of the TLS listener ("" without TLS).
func (m *Mosquitto) TLSURL() string {
	if m.tlsPort == 0 {
		return ""
	}
	return fmt.Sprintf("mqtts://127.0.0.1:%d", m.tlsPort)
}

// Log returns mosquitto's log so far (for failure messages).
func (m *Mosquitto) Log() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
	return string(b)
}

func (m *Mosquitto) start(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	cmd := exec.Command(m.bin, "-c", m.conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("mqtttest: start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	m.cmd, m.exited = cmd, exited
	ports := []int{m.port}
	if m.tlsPort != 0 {
		ports = append(ports, m.tlsPort)
	}
	for _, p := range ports {
		if err := waitListening(p, exited); err != nil {
			t.Fatalf("mqtttest: mosquitto on port %d: %v\nconfig:\n%s\nlog:\n%s", p, err, readFile(m.conf), m.Log())
		}
	}
}

// Stop terminates mosquitto (SIGTERM, which also saves the persistence
// file) and waits for it to exit. It is a no-op when it is not running.
func (m *Mosquitto) Stop(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
		t.Errorf("mqtttest: mosquitto did not stop on SIGTERM within 15s, killed")
	}
	m.cmd = nil
}

// Restart stops mosquitto and starts it again on the same port with the same
// persistence directory, so sessions and queued messages survive.
func (m *Mosquitto) Restart(t testing.TB) {
	t.Helper()
	m.Stop(t)
	m.start(t)
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process can
// take it before mosquitto binds; start then fails loudly rather than quietly.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening polls until port accepts connections, the process exited or 10s passed.
func waitListening(port int, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("mosquitto exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after 10s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
