package mqtttest

import (
	"io"
	"log/slog"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// StartMochi runs an embedded mochi-mqtt broker on a free 127.0.0.1 port that
// accepts every client, and closes it on Cleanup. It returns mqtt://host:port.
// mochi keeps sessions in memory only and deviates from mosquitto in ordering
// and Receive Maximum on redelivery; use mosquitto for those tests.
func StartMochi(t testing.TB) string {
	t.Helper()
	return startMochi(t)
}

func startMochi(t testing.TB, hooks ...mochi.Hook) string {
	t.Helper()
	s := mochi.New(&mochi.Options{
		InlineClient: true,
		Capabilities: mochi.NewDefaultServerCapabilities(),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	// Without an auth hook mochi refuses every CONNECT.
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatalf("mochi: add auth hook: %v", err)
	}
	for _, h := range hooks {
		if err := s.AddHook(h, nil); err != nil {
			t.Fatalf("mochi: add hook %s: %v", h.ID(), err)
		}
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatalf("mochi: listen: %v", err)
	}
	if err := s.Serve(); err != nil {
		t.Fatalf("mochi: serve: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return "mqtt://" + l.Address()
}
