package main

// Poison input and NATS link faults, with the built binary: one report NATS cannot take
// never stalls the reports behind it, and a NATS connection problem never ends in silent
// loss or a process that looks healthy but publishes nothing.

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/SovereignCloudStack/zuul-bridge/internal/mqtt/mqtttest"
	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

// withMessage gives a report a pipeline message of n bytes.
func withMessage(report []byte, n int) []byte {
	return bytes.Replace(report, []byte(`"message": "Build failed."`), []byte(`"message": "`+strings.Repeat("x", n)+`"`), 1)
}

func (p *bridgeProc) healthz() int {
	resp, err := http.Get("http://" + p.http + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestOversizedReportDoesNotStallTheStream: a 1.5 MB failing report (under the bridge's
// own 4 MiB limit, over the server's default max_payload of 1 MiB) is dead-lettered with
// its head, size and hash, and the 300 ordinary reports behind it are all delivered.
func TestOversizedReportDoesNotStallTheStream(t *testing.T) {
	const n = 300
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	ns := natstest.Start(t, false) // max_payload: the server's default
	nc := natsConn(t, ns.ClientURL())
	dead := collect(t, nc, "zuul-bridge.deadletter")
	got := collect(t, nc, "zuul.>")
	nc.Flush()
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": broker.URL(), "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_MQTT_CLIENT_ID": "poison-size", "BRIDGE_LOG_LEVEL": "info"})
	reports := uniqueFailures(n + 1)
	huge := withMessage(reports[0], 1500_000)
	if len(huge) < 1500_000 {
		t.Fatal("the sample has no plain message to grow")
	}
	// Also a payload over the bridge's own limit: rejected, and its dead letter is bounded too.
	junk := bytes.Repeat([]byte("j"), 5<<20)
	mqtttest.Publish(t, broker.URL(), "zuul/junk", junk)
	mqtttest.Publish(t, broker.URL(), capiTopic, append([][]byte{huge}, reports[1:]...)...)
	waitFor(t, 90*time.Second, "the 300 ordinary reports and two dead letters", func() bool {
		return got.unique() == n && dead.unique() == 2
	})
	waitFor(t, 30*time.Second, "every report acknowledged", func() bool {
		return p.metric(t, "zuul_bridge_reports_acked_total") == n+2
	})
	dead.mu.Lock()
	var m *nats.Msg
	for _, d := range dead.msgs {
		if d.Header.Get("Bridge-Topic") == "zuul/junk" {
			if d.Header.Get("Bridge-Payload-Truncated") != "true" || d.Header.Get("Bridge-Payload-Size") != strconv.Itoa(len(junk)) ||
				!strings.HasPrefix(d.Header.Get("Bridge-Reason"), "too_large") {
				t.Errorf("dead letter of the junk: %d bytes, headers %v", len(d.Data), d.Header)
			}
		} else {
			m = d
		}
	}
	dead.mu.Unlock()
	if m == nil {
		t.Fatal("no dead letter of the oversized report")
	}
	if m.Header.Get("Bridge-Payload-Truncated") != "true" || m.Header.Get("Bridge-Payload-Size") != strconv.Itoa(len(huge)) ||
		len(m.Header.Get("Bridge-Payload-Sha256")) != 64 || !bytes.HasPrefix(huge, m.Data) || len(m.Data) == 0 ||
		!strings.Contains(m.Header.Get("Bridge-Reason"), "max_payload") {
		t.Fatalf("dead letter: %d bytes, headers %v", len(m.Data), m.Header)
	}
}

// TestHugeProjectNameIsDeadLettered: a 5000-character project name would make a subject
// over the server's control-line limit (which closes the connection); it is dead-lettered,
// the connection stays up, the next report goes through.
func TestHugeProjectNameIsDeadLettered(t *testing.T) {
	brokerURL := anyBroker(t)
	ns := natstest.Start(t, false)
	nc := natsConn(t, ns.ClientURL())
	dead := collect(t, nc, "zuul-bridge.deadletter")
	got := collect(t, nc, "zuul.>")
	nc.Flush()
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": brokerURL, "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_MQTT_CLIENT_ID": "poison-subject", "BRIDGE_LOG_LEVEL": "info"})
	reports := failuresOfProjects(t, strings.Repeat("p", 5000), "o/next")
	mqtttest.Publish(t, brokerURL, capiTopic, reports...)
	waitFor(t, 30*time.Second, "the dead letter and the next report", func() bool {
		return dead.unique() == 1 && got.unique() == 1
	})
	dead.mu.Lock()
	reason := dead.msgs[0].Header.Get("Bridge-Reason")
	dead.mu.Unlock()
	if !strings.Contains(reason, "subject") {
		t.Errorf("reason %q", reason)
	}
	waitFor(t, 30*time.Second, "both acknowledged", func() bool { return p.metric(t, "zuul_bridge_reports_acked_total") == 2 })
	if p.ready() != 200 || p.healthz() != 200 || p.metric(t, "zuul_bridge_nats_connected") != 1 {
		t.Fatalf("after the long subject: ready %d, healthz %d", p.ready(), p.healthz())
	}
}

// TestPublishDeniedByPermissionsIsDeadLettered: the server refuses one subject to the
// bridge's user; that report is not counted as delivered: it is dead-lettered, the
// violation is counted, and the others arrive.
func TestPublishDeniedByPermissionsIsDeadLettered(t *testing.T) {
	brokerURL := anyBroker(t)
	ns := natstest.StartWith(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "bridge", Password: "bridge-pw", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"zuul.*.*.denied/x.>"}}}},
			{Username: "reader", Password: "reader-pw"},
		}})
	nc := natstest.Connect(t, ns.ClientURL(), nats.UserInfo("reader", "reader-pw"))
	dead := collect(t, nc, "zuul-bridge.deadletter")
	got := collect(t, nc, "zuul.>")
	nc.Flush()
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pwFile, []byte("bridge-pw\n"))
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": brokerURL, "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_NATS_USER": "bridge", "BRIDGE_NATS_PASSWORD_FILE": pwFile,
		"BRIDGE_MQTT_CLIENT_ID": "poison-perm", "BRIDGE_LOG_LEVEL": "info"})
	mqtttest.Publish(t, brokerURL, capiTopic, failuresOfProjects(t, "o/a", "denied/x", "o/b")...)
	waitFor(t, 60*time.Second, "two reports and one dead letter", func() bool {
		return got.unique() == 2 && dead.unique() == 1
	})
	waitFor(t, 30*time.Second, "all acknowledged", func() bool { return p.metric(t, "zuul_bridge_reports_acked_total") == 3 })
	dead.mu.Lock()
	m := dead.msgs[0]
	dead.mu.Unlock()
	if !strings.Contains(m.Header.Get("Bridge-Reason"), "permissions violation") || m.Header.Get("Bridge-Sink") != "nats" {
		t.Errorf("dead letter headers %v", m.Header)
	}
	if v := p.metric(t, "zuul_bridge_nats_permission_violations_total"); v < 1 {
		t.Errorf("permission violations counted: %v", v)
	}
	got.mu.Lock()
	for _, m := range got.msgs {
		if strings.Contains(m.Subject, "denied") {
			t.Errorf("denied subject %s arrived", m.Subject)
		}
	}
	got.mu.Unlock()
}

// TestRotatedPasswordIsPickedUp: the NATS password changes on the server first; the
// bridge's reconnects fail with authorization errors for a while (more than the two in a
// row after which nats.go gives up by default); then the mounted file is updated and the
// bridge reconnects and delivers. /healthz stays 200 throughout: the link is not dead.
func TestRotatedPasswordIsPickedUp(t *testing.T) {
	brokerURL := anyBroker(t)
	opts := func(pw string) *server.Options {
		return &server.Options{Host: "127.0.0.1", Port: freePortNumber(t), NoLog: true, NoSigs: true,
			Users: []*server.User{{Username: "bridge", Password: pw}, {Username: "reader", Password: "reader-pw"}}}
	}
	o := opts("old-pw")
	ns := natstest.StartWith(t, o)
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pwFile, []byte("old-pw\n"))
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": brokerURL, "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_NATS_USER": "bridge", "BRIDGE_NATS_PASSWORD_FILE": pwFile,
		"BRIDGE_MQTT_CLIENT_ID": "poison-rotate", "BRIDGE_LOG_LEVEL": "info"})

	o2 := opts("new-pw")
	o2.Port = o.Port
	if err := ns.ReloadOptions(o2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "/readyz 503 with the old password", func() bool { return p.ready() == 503 })
	waitFor(t, 30*time.Second, "three authorization errors in a row", func() bool {
		return strings.Count(p.out.String(), "Authorization Violation") >= 3 || strings.Count(p.out.String(), "authorization violation") >= 3
	})
	if p.healthz() != 200 {
		t.Fatal("/healthz fails while the link only waits for a credential")
	}
	writeFile(t, pwFile, []byte("new-pw\n"))
	waitFor(t, 30*time.Second, "/readyz 200 with the new password", func() bool { return p.ready() == 200 })
	nc := natstest.Connect(t, ns.ClientURL(), nats.UserInfo("reader", "reader-pw"))
	got := collect(t, nc, "zuul.>")
	nc.Flush()
	mqtttest.Publish(t, brokerURL, capiTopic, uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "a report after the rotation", func() bool { return got.unique() == 1 })
	if strings.Contains(p.out.String(), "new-pw") || strings.Contains(p.out.String(), "old-pw") {
		t.Error("a password is in the log")
	}
}

// TestDotTenantAndBadDeadLetterSubjectAreRefused: a tenant ".." would make zuul-web
// requests go to another path, and a dead-letter subject with a wildcard or an empty token
// can never be published: both stop the start with the variable named.
func TestDotTenantAndBadDeadLetterSubjectAreRefused(t *testing.T) {
	cmd := exec.Command(bridgeBin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BRIDGE_MQTT_URL=mqtt://broker:1883", "BRIDGE_NATS_URL=nats://nats:4222",
		"BRIDGE_ZUUL_URL=http://zuul", "BRIDGE_ZUUL_TENANTS=scs,..", "BRIDGE_NATS_DEADLETTER_SUBJECT=dead..letters"}
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	for _, name := range []string{"BRIDGE_ZUUL_TENANTS", "BRIDGE_NATS_DEADLETTER_SUBJECT"} {
		if !strings.Contains(string(out), name) {
			t.Errorf("output does not name %s:\n%s", name, out)
		}
	}
}

// TestRotatedNkeyFailsHealthz: nats.go fixes an nkey's public key when the connection is
// made, so a rotated seed needs a restart: once the server wants the new key and the file
// holds it, /healthz fails (the orchestrator restarts the bridge) instead of the bridge
// retrying with the old key for ever.
func TestRotatedNkeyFailsHealthz(t *testing.T) {
	brokerURL := anyBroker(t)
	oldKey, _ := nkeys.CreateUser()
	newKey, _ := nkeys.CreateUser()
	oldSeed, _ := oldKey.Seed()
	newSeed, _ := newKey.Seed()
	oldPub, _ := oldKey.PublicKey()
	newPub, _ := newKey.PublicKey()
	seedFile := filepath.Join(t.TempDir(), "bridge.nk")
	writeFile(t, seedFile, oldSeed)
	o := &server.Options{Host: "127.0.0.1", Port: freePortNumber(t), NoLog: true, NoSigs: true, Nkeys: []*server.NkeyUser{{Nkey: oldPub}}}
	ns := natstest.StartWith(t, o)
	p := startBridge(t, map[string]string{"BRIDGE_MQTT_URL": brokerURL, "BRIDGE_NATS_URL": ns.ClientURL(),
		"BRIDGE_NATS_NKEY_FILE": seedFile, "BRIDGE_MQTT_CLIENT_ID": "poison-nkey", "BRIDGE_LOG_LEVEL": "info"})
	o2 := *o
	o2.Nkeys = []*server.NkeyUser{{Nkey: newPub}}
	if err := ns.ReloadOptions(&o2); err != nil {
		t.Fatal(err)
	}
	writeFile(t, seedFile, newSeed)
	waitFor(t, 30*time.Second, "/healthz 503 after the nkey rotation", func() bool { return p.healthz() == 503 })
}
