package mqtt

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
)

func TestLifecycleMisuse(t *testing.T) {
	cfg := Config{URL: "mqtt://127.0.0.1:1", ClientID: "c", Topic: "t"}
	if _, err := New(cfg, nil, testLogger()); err == nil {
		t.Error("New with a nil handler: no error")
	}
	s, err := New(cfg, func(*Message) {}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("Close before Start: %v", err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("Start after Close: no error")
	}
	if err := s.AwaitReady(context.Background()); err == nil {
		t.Error("AwaitReady after Close: no error")
	}
}

// A handler that does not return holds Close only as long as its context.
func TestCloseWithBlockedHandler(t *testing.T) {
	url := mqtttest.StartMochi(t)
	release := make(chan struct{})
	entered := make(chan *Message, 1)
	s, err := New(testConfig(t, url), func(m *Message) {
		entered <- m
		<-release
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.AwaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	mqtttest.Publish(t, url, "zuul/t", []byte("stuck"))
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("handler not called")
	}

	const deadline = 200 * time.Millisecond
	const margin = 5 * time.Second // generous: Close's deadline is under test, not its speed
	short, cancelShort := context.WithTimeout(context.Background(), deadline)
	defer cancelShort()
	closed := make(chan error, 1)
	go func() { closed <- s.Close(short) }()
	select {
	case err := <-closed:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "handler still running") {
			t.Errorf("Close with a blocked handler: %v, want deadline exceeded naming the handler", err)
		}
	case <-time.After(deadline + margin):
		t.Errorf("Close with a blocked handler and a %v deadline still running after %v", deadline, deadline+margin)
	}
	close(release)
	select {
	case <-s.dispDone: // the dispatcher ends once the handler returns
	case <-time.After(15 * time.Second):
		t.Fatal("the dispatcher did not end within 15s of the handler returning")
	}
}
