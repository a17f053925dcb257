package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/tools/internal/procs"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startMosquitto runs mosquitto from PATH with its own config in dir. The defaults would
// distort the measurement: max_queued_messages 1000 silently drops what a slow consumer
// has not taken yet, and the publisher's in-flight window is max_inflight_messages.
func startMosquitto(ctx context.Context, dir string, inflight int) (*procs.Proc, string, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		return nil, "", errors.New("mosquitto not found in PATH (Debian: apt-get install mosquitto)")
	}
	port, err := procs.FreePort()
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
	p, err := procs.Start("mosquitto", filepath.Join(dir, "mosquitto.out"), nil, bin, "-c", conf)
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := procs.WaitPort(ctx, addr, 10*time.Second, p.Exited); err != nil {
		p.Stop(time.Second)
		return nil, "", fmt.Errorf("mosquitto: %w\n%s", err, p.Tail(10))
	}
	return p, "mqtt://" + addr, nil
}

// natsServer is either the Debian nats-server binary (its CPU is then not in our process)
// or, without one, an embedded server.
type natsServer struct {
	proc     *procs.Proc
	embedded *natsserver.Server
	url      string
	kind     string
}

// startNATS starts a NATS server, with JetStream (stored in dir) when js is set.
func startNATS(ctx context.Context, dir string, js bool) (*natsServer, error) {
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if bin, err := exec.LookPath("nats-server"); err == nil {
		args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
		if js {
			args = append(args, "-js", "-sd", filepath.Join(dir, "jetstream"))
		}
		p, err := procs.Start("nats-server", filepath.Join(dir, "nats.log"), nil, bin, args...)
		if err != nil {
			return nil, err
		}
		if err := procs.WaitPort(ctx, addr, 10*time.Second, p.Exited); err != nil {
			p.Stop(time.Second)
			return nil, fmt.Errorf("nats-server: %w\n%s", err, p.Tail(10))
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

func (n *natsServer) stop() {
	if n == nil {
		return
	}
	if n.proc != nil {
		n.proc.Stop(5 * time.Second)
	}
	if n.embedded != nil {
		n.embedded.Shutdown()
	}
}
