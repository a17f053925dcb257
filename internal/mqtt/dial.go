package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"os"
	"sync"

	"github.com/eclipse/paho.golang/autopaho"
)

// readBufferSize is the MQTT connection's read buffer: several typical reports at once.
const readBufferSize = 32 << 10

// dialer returns autopaho's AttemptConnection for URL u, or nil to let autopaho dial:
// for WebSocket URLs, and when all_proxy is set (autopaho then dials through the proxy).
func (s *Subscriber) dialer(u *url.URL) func(context.Context, autopaho.ClientConfig, *url.URL) (net.Conn, error) {
	if u.Scheme == "ws" || u.Scheme == "wss" || os.Getenv("all_proxy") != "" {
		return nil
	}
	return s.dial
}

// dial opens a TCP or TLS connection like autopaho does, with a buffered reader in front:
// paho reads each packet's fixed header one byte at a time, a system call per byte
// without a buffer, and with one the reads of a burst of packets come out of one.
func (s *Subscriber) dial(ctx context.Context, cfg autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
	// autopaho passes its long-lived context here, not the attempt's.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if tlsSchemes[u.Scheme] {
		d := tls.Dialer{Config: cfg.TlsCfg}
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(conn, readBufferSize)
	if tc, ok := conn.(*net.TCPConn); ok {
		return &bufferedTCPConn{TCPConn: tc, r: r}, nil
	}
	return &bufferedConn{Conn: conn, r: r}, nil
}

// bufferedConn reads through a buffer. Its mutex makes paho write each packet whole
// (paho locks a connection that is a sync.Locker, as autopaho's TLS connections are),
// since a packet is written as several buffers and goroutines write concurrently.
type bufferedConn struct {
	net.Conn
	sync.Mutex
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// bufferedTCPConn is bufferedConn for plain TCP. It embeds the *net.TCPConn itself, not
// a net.Conn, so that the packet's buffers still go out in one writev system call (the
// net package looks for the connection's own vectored write, which embedding keeps):
// through an interface they would be written one by one, a PUBACK as two TCP segments.
type bufferedTCPConn struct {
	*net.TCPConn
	sync.Mutex
	r *bufio.Reader
}

func (c *bufferedTCPConn) Read(p []byte) (int, error) { return c.r.Read(p) }
