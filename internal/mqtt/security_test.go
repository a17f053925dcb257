package mqtt

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
)

// mqtts:// with a private CA and a client certificate the broker requires.
func TestMosquittoTLS(t *testing.T) {
	certs := mqtttest.GenerateCerts(t)
	mq := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{TLS: &mqtttest.MosquittoTLS{
		CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, CAFile: certs.CAFile, RequireClientCert: true,
	}})

	t.Run("trusted", func(t *testing.T) {
		cfg := testConfig(t, mq.TLSURL())
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = certs.CAFile, certs.ClientCertFile, certs.ClientKeyFile
		h := startSub(t, cfg)
		h.awaitReady(t)
		mqtttest.Publish(t, mq.URL(), "zuul/t", []byte("over tls"))
		h.expect(t, true, "over tls")
	})

	t.Run("unknown CA is logged and retried", func(t *testing.T) {
		cfg := testConfig(t, mq.TLSURL())
		cfg.CertFile, cfg.KeyFile = certs.ClientCertFile, certs.ClientKeyFile // no CAFile: system roots
		h := startSub(t, cfg)
		// Two connect attempts that failed on the certificate: at least one retry.
		eventually(t, "two connect attempts failing on the certificate", func() bool {
			return len(logLines(h.log.String(), "mqtt connect failed, retrying", "certificate")) >= 2
		})
		if h.sub.Ready() {
			t.Fatal("Ready with an untrusted server certificate")
		}
	})
}

// Username and password: accepted when right (also from a file, re-read at
// connect); when wrong, Ready stays false, the reason is logged, and the
// password is not.
func TestMosquittoAuth(t *testing.T) {
	const user, pass = "bridge", "correct-horse-battery"
	mq := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Username: user, Password: pass})

	t.Run("password", func(t *testing.T) {
		cfg := testConfig(t, mq.URL())
		cfg.Username, cfg.Password = user, []byte(pass)
		h := startSub(t, cfg)
		h.awaitReady(t)
		mqtttest.PublishWith(t, mqtttest.PublishOptions{URL: mq.URL(), Username: user, Password: pass}, "zuul/t", []byte("authed"))
		h.expect(t, true, "authed")
	})

	t.Run("password file", func(t *testing.T) {
		pwfile := filepath.Join(t.TempDir(), "password")
		writeFile(t, pwfile, pass+"\n")
		cfg := testConfig(t, mq.URL())
		cfg.Username, cfg.PasswordFile = user, pwfile
		h := startSub(t, cfg)
		h.awaitReady(t)
		if strings.Contains(h.log.String(), pass) {
			t.Fatalf("log contains the password:\n%s", h.log)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "wrong-password-xyzzy"
		cfg := testConfig(t, mq.URL())
		cfg.Username, cfg.Password = user, []byte(wrong)
		h := startSub(t, cfg)
		// Two refused connect attempts: it keeps retrying with backoff.
		eventually(t, "two refused connect attempts", func() bool {
			return len(logLines(h.log.String(), "mqtt broker refused the connection, retrying", "")) >= 2
		})
		if h.sub.Ready() {
			t.Fatal("Ready with a wrong password")
		}
		log := h.log.String()
		if !strings.Contains(log, "bad user name or password") && !strings.Contains(log, "not authorized") {
			t.Errorf("log does not name the reason:\n%s", log)
		}
		if strings.Contains(log, wrong) {
			t.Fatalf("log contains the password:\n%s", log)
		}
	})
}

// logLines returns the JSON log lines whose message is msg and whose error
// contains errPart: one per event, however often a word occurs in a line.
func logLines(log, msg, errPart string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		var e struct{ Message, Error string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Message == msg && strings.Contains(e.Error, errPart) {
			out = append(out, line)
		}
	}
	return out
}
