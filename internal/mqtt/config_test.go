package mqtt

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Config{URL: "mqtt://broker:1883", ClientID: "bridge-0", Topic: "zuul/#"}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; none = valid
	}{
		{"minimal", func(*Config) {}, nil},
		{"tls with files", func(c *Config) {
			c.URL, c.CAFile, c.CertFile, c.KeyFile = "mqtts://broker:8883", "ca.pem", "c.pem", "k.pem"
		}, nil},
		{"shared subscription", func(c *Config) { c.Topic = "$share/bridge/zuul/#" }, nil},
		{"websocket", func(c *Config) { c.URL = "wss://broker:443/mqtt" }, nil},
		{"everything missing", func(c *Config) { *c = Config{} }, []string{"URL: required", "ClientID: required", "Topic: required"}},
		{"bad scheme", func(c *Config) { c.URL = "http://broker:80" }, []string{`URL: scheme "http"`}},
		{"no port", func(c *Config) { c.URL = "mqtt://broker" }, []string{"URL: needs host and port"}},
		{"credentials in URL", func(c *Config) { c.URL = "mqtt://u:s3cret@broker:1883" }, []string{"URL: must not contain credentials"}},
		{"unparsable URL", func(c *Config) { c.URL = "mqtt://u:s3cret@broker:1883/%zz" }, []string{"URL: not a valid URL"}},
		{"wildcard in middle", func(c *Config) { c.Topic = "zuul/#/x" }, []string{"Topic:", "last level"}},
		{"partial wildcard", func(c *Config) { c.Topic = "zuul/a+" }, []string{"Topic:", "whole level"}},
		{"bad share", func(c *Config) { c.Topic = "$share/zuul" }, []string{"Topic:", "$share/<group>/<filter>"}},
		{"password twice", func(c *Config) { c.Password, c.PasswordFile = []byte("s3cret"), "/pw" }, []string{"Password, PasswordFile"}},
		{"cert without key", func(c *Config) { c.URL, c.CertFile = "mqtts://b:8883", "c.pem" }, []string{"CertFile, KeyFile: set both"}},
		{"CA on plain URL", func(c *Config) { c.CAFile = "ca.pem" }, []string{"only used with a TLS URL"}},
		{"negative duration", func(c *Config) { c.KeepAlive = -time.Second }, []string{"KeepAlive: must not be negative"}},
		{"sub-second expiry", func(c *Config) { c.SessionExpiry = time.Millisecond }, []string{"SessionExpiry: must be between"}},
		{"huge keepalive", func(c *Config) { c.KeepAlive = 100000 * time.Second }, []string{"KeepAlive: must be between"}},
		{"backoff inverted", func(c *Config) { c.BackoffMin, c.BackoffMax = time.Minute, time.Second }, []string{"BackoffMin, BackoffMax"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestNewReportsUnreadableFiles(t *testing.T) {
	cfg := Config{URL: "mqtts://b:8883", ClientID: "c", Topic: "t", CAFile: "/nonexistent/ca.pem", PasswordFile: "/nonexistent/pw"}
	_, err := New(cfg, func(*Message) {}, testLogger())
	if err == nil || !strings.Contains(err.Error(), "CAFile") {
		t.Fatalf("want a CAFile error, got %v", err)
	}
}

func TestBackoff(t *testing.T) {
	b := backoff(time.Second, 8*time.Second)
	if d := b(0); d != 0 {
		t.Errorf("attempt 0: %s, want 0 (first reconnect at once)", d)
	}
	for attempt, max := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 50: 8 * time.Second} {
		for range 20 {
			if d := b(attempt); d < max/2 || d > max {
				t.Errorf("attempt %d: %s, want within [%s, %s]", attempt, d, max/2, max)
			}
		}
	}
}

// A connection that died young must not make the next reconnect immediate.
func TestReconnectDelayAfterShortConnections(t *testing.T) {
	s, err := New(Config{URL: "mqtt://b:1883", ClientID: "c", Topic: "t"}, func(*Message) {}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if d := s.reconnectDelay(0); d != 0 {
		t.Errorf("first reconnect after a healthy connection: %s, want 0", d)
	}
	s.flaps = 3 // three connections in a row lived shorter than BackoffMax
	if d := s.reconnectDelay(0); d < 2*time.Second {
		t.Errorf("reconnect after 3 short connections: %s, want at least 2s", d)
	}
}

func TestConfigPrintingRedactsSecrets(t *testing.T) {
	c := Config{URL: "mqtt://u:s3cret@b:1883", ClientID: "c", Topic: "t", Password: []byte("s3cret")}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, c); strings.Contains(out, "s3cret") {
			t.Errorf("%s leaks the password: %s", verb, out)
		}
	}
}
