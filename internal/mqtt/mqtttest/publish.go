package mqtttest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// PublishOptions configures PublishWith.
type PublishOptions struct {
	URL      string // mqtt://, tcp://, mqtts://, tls:// or ssl://
	Username string
	Password string
	TLS      *tls.Config // for mqtts://; nil = system roots
	Retain   bool
}

var publisherSeq atomic.Int64

// Publish sends payloads to topic with QoS 1, one after another, and waits
// for each PUBACK. It fails the test on any error.
func Publish(t testing.TB, brokerURL, topic string, payloads ...[]byte) {
	t.Helper()
	PublishWith(t, PublishOptions{URL: brokerURL}, topic, payloads...)
}

// PublishWith is Publish with credentials, TLS or retain.
func PublishWith(t testing.TB, o PublishOptions, topic string, payloads ...[]byte) {
	t.Helper()
	if err := publish(o, topic, payloads); err != nil {
		t.Fatalf("mqtttest: publish to %s: %v", topic, err)
	}
}

func publish(o PublishOptions, topic string, payloads [][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(o.URL)
	if err != nil {
		return err
	}
	var conn net.Conn
	var d net.Dialer
	switch u.Scheme {
	case "mqtt", "tcp":
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	case "mqtts", "tls", "ssl":
		td := tls.Dialer{NetDialer: &d, Config: o.TLS}
		conn, err = td.DialContext(ctx, "tcp", u.Host)
	default:
		return fmt.Errorf("scheme %q not supported", u.Scheme)
	}
	if err != nil {
		return err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	cp := &paho.Connect{
		ClientID:   fmt.Sprintf("mqtttest-pub-%d-%d", time.Now().UnixNano(), publisherSeq.Add(1)),
		CleanStart: true,
		KeepAlive:  30,
	}
	if o.Username != "" {
		cp.Username, cp.UsernameFlag = o.Username, true
	}
	if o.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(o.Password), true
	}
	if _, err := c.Connect(ctx, cp); err != nil {
		_ = conn.Close()
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		<-c.Done()
	}()
	for i, p := range payloads {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: p, Retain: o.Retain}); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}
