// Package natstest runs a real nats-server inside the test process, on a free port.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start runs an embedded nats-server (with JetStream when js is true) and stops it at the
// end of the test.
func Start(t testing.TB, js bool) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true}
	if js {
		opts.JetStream = true
		opts.StoreDir = t.TempDir()
	}
	return StartWith(t, opts)
}

// StartWith runs a server with the given options (for a fixed port, TLS or auth).
func StartWith(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect connects to url with opts and closes the connection at the end of the test.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream starts a server with JetStream and returns a JetStream context on it.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(Connect(t, Start(t, true).ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	return js
}
