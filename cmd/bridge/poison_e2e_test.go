package main

// Poison input and NATS link faults, with the built binary: one report NATS cannot take
// never stalls the reports behind it, and a NATS connection problem never ends in silent
// loss or a process that looks healthy but publishes nothing.

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub/natstest"
)

// withMessage gives a report a pipeline message of n bytes.
func withMessage(report []byte, n int) []byte {
	return bytes.Replace(report, []byte(`"message": "Build failed."`), []byte(`"message": "`+strings.Repeat("x", n)+`"`), 1)
}

// TestOversizedReportDoesNotStallTheStream: a 1.5 MB failing report (under the bridge's
// own 4 MiB limit, over the server's default max_payload of 1 MiB) is dead-lettered with
// its head, size and hash, and the 300 ordinary reports behind it are all delivered.
func TestOversizedReportDoesNotStallTheStream(t *testing.T) {
	t.Parallel()
	const n = 300
	h := newHarness(t, harnessOptions{ClientID: "poison-size", LogLevel: "info"}) // max_payload: the server's default
	dead, got := h.dead, h.chat
	p := h.start()
	reports := uniqueFailures(n + 1)
	huge := withMessage(reports[0], 1500_000)
	if len(huge) < 1500_000 {
		t.Fatal("the sample has no plain message to grow")
	}
	// Also a payload over the bridge's own limit: rejected, and its dead letter is bounded too.
	junk := bytes.Repeat([]byte("j"), 5<<20)
	h.publishTo("zuul/junk", junk)
	h.publish(append([][]byte{huge}, reports[1:]...)...)
	waitFor(t, 90*time.Second, "the 300 ordinary reports and two dead letters", func() bool {
		return got.unique() == n && dead.unique() == 2
	})
	p.waitAcked(t, n+2)
	var m *nats.Msg
	for _, d := range dead.all() {
		if d.Header.Get("Bridge-Topic") == "zuul/junk" {
			if d.Header.Get("Bridge-Payload-Truncated") != "true" || d.Header.Get("Bridge-Payload-Size") != strconv.Itoa(len(junk)) ||
				!strings.HasPrefix(d.Header.Get("Bridge-Reason"), "too_large") {
				t.Errorf("dead letter of the junk: %d bytes, headers %v", len(d.Data), d.Header)
			}
		} else {
			m = d
		}
	}
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
	t.Parallel()
	h := newHarness(t, harnessOptions{AnyBroker: true, ClientID: "poison-subject", LogLevel: "info"})
	dead, got := h.dead, h.chat
	p := h.start()
	h.publish(failuresOfProjects(t, strings.Repeat("p", 5000), "o/next")...)
	waitFor(t, 30*time.Second, "the dead letter and the next report", func() bool {
		return dead.unique() == 1 && got.unique() == 1
	})
	if reason := dead.first().Header.Get("Bridge-Reason"); !strings.Contains(reason, "subject") {
		t.Errorf("reason %q", reason)
	}
	p.waitAcked(t, 2)
	if p.ready() != 200 || p.healthz() != 200 || p.metric(t, "zuul_bridge_nats_connected") != 1 {
		t.Fatalf("after the long subject: ready %d, healthz %d", p.ready(), p.healthz())
	}
}

// TestPublishDeniedByPermissionsIsDeadLettered: the server refuses one subject to the
// bridge's user; that report is not counted as delivered: it is dead-lettered, the
// violation is counted, and the others arrive.
func TestPublishDeniedByPermissionsIsDeadLettered(t *testing.T) {
	t.Parallel()
	o := natsOptions(t)
	o.Users = []*server.User{
		{Username: "bridge", Password: "bridge-pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"zuul.*.*.denied/x.>"}}}},
		{Username: "reader", Password: "reader-pw"},
	}
	h := newHarness(t, harnessOptions{AnyBroker: true, NATS: o, NATSConn: []nats.Option{nats.UserInfo("reader", "reader-pw")},
		ClientID: "poison-perm", LogLevel: "info"})
	dead, got := h.dead, h.chat
	h.env["BRIDGE_NATS_USER"] = "bridge"
	h.env["BRIDGE_NATS_PASSWORD_FILE"] = h.file("pw", "bridge-pw\n")
	p := h.start()
	h.publish(failuresOfProjects(t, "o/a", "denied/x", "o/b")...)
	waitFor(t, 60*time.Second, "two reports and one dead letter", func() bool {
		return got.unique() == 2 && dead.unique() == 1
	})
	p.waitAcked(t, 3)
	m := dead.first()
	if !strings.Contains(m.Header.Get("Bridge-Reason"), "permissions violation") || m.Header.Get("Bridge-Sink") != "nats" {
		t.Errorf("dead letter headers %v", m.Header)
	}
	if v := p.metric(t, "zuul_bridge_nats_permission_violations_total"); v < 1 {
		t.Errorf("permission violations counted: %v", v)
	}
	for _, m := range got.all() {
		if strings.Contains(m.Subject, "denied") {
			t.Errorf("denied subject %s arrived", m.Subject)
		}
	}
}

// TestRotatedPasswordIsPickedUp: the NATS password changes on the server first; the
// bridge's reconnects fail with authorization errors for a while (more than the two in a
// row after which nats.go gives up by default); then the mounted file is updated and the
// bridge reconnects and delivers. /healthz stays 200 throughout: the link is not dead.
func TestRotatedPasswordIsPickedUp(t *testing.T) {
	t.Parallel()
	o := natsOptions(t)
	users := func(pw string) []*server.User {
		return []*server.User{{Username: "bridge", Password: pw}, {Username: "reader", Password: "reader-pw"}}
	}
	o.Users = users("old-pw")
	// The test reads NATS as reader once the password has changed.
	h := newHarness(t, harnessOptions{AnyBroker: true, NATS: o, NoNATSConn: true, ClientID: "poison-rotate", LogLevel: "info"})
	pwFile := h.file("pw", "old-pw\n")
	h.env["BRIDGE_NATS_USER"] = "bridge"
	h.env["BRIDGE_NATS_PASSWORD_FILE"] = pwFile
	p := h.start()

	o2 := *o
	o2.Users = users("new-pw")
	if err := h.ns.ReloadOptions(&o2); err != nil {
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
	nc := natstest.Connect(t, h.ns.ClientURL(), nats.UserInfo("reader", "reader-pw"))
	got := collect(t, nc, "zuul.>")
	nc.Flush()
	h.publish(uniqueFailures(1)...)
	waitFor(t, 30*time.Second, "a report after the rotation", func() bool { return got.unique() == 1 })
	if strings.Contains(p.out.String(), "new-pw") || strings.Contains(p.out.String(), "old-pw") {
		t.Error("a password is in the log")
	}
}

// TestDotTenantAndBadDeadLetterSubjectAreRefused: a tenant ".." would make zuul-web
// requests go to another path, and a dead-letter subject with a wildcard or an empty token
// can never be published: both stop the start with the variable named.
func TestDotTenantAndBadDeadLetterSubjectAreRefused(t *testing.T) {
	t.Parallel()
	out, code := runBridge(t, []string{"BRIDGE_MQTT_URL=mqtt://broker:1883", "BRIDGE_NATS_URL=nats://nats:4222",
		"BRIDGE_ZUUL_URL=http://zuul", "BRIDGE_ZUUL_TENANTS=scs,..", "BRIDGE_NATS_DEADLETTER_SUBJECT=dead..letters"})
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	for _, name := range []string{"BRIDGE_ZUUL_TENANTS", "BRIDGE_NATS_DEADLETTER_SUBJECT"} {
		if !strings.Contains(out, name) {
			t.Errorf("output does not name %s:\n%s", name, out)
		}
	}
}

// TestRotatedNkeyFailsHealthz: nats.go fixes an nkey's public key when the connection is
// made, so a rotated seed needs a restart: once the server wants the new key and the file
// holds it, /healthz fails (the orchestrator restarts the bridge) instead of the bridge
// retrying with the old key for ever.
func TestRotatedNkeyFailsHealthz(t *testing.T) {
	t.Parallel()
	oldKey, _ := nkeys.CreateUser()
	newKey, _ := nkeys.CreateUser()
	oldSeed, _ := oldKey.Seed()
	newSeed, _ := newKey.Seed()
	oldPub, _ := oldKey.PublicKey()
	newPub, _ := newKey.PublicKey()
	seedFile := filepath.Join(t.TempDir(), "bridge.nk")
	writeFile(t, seedFile, oldSeed)
	o := natsOptions(t)
	o.Nkeys = []*server.NkeyUser{{Nkey: oldPub}}
	h := newHarness(t, harnessOptions{AnyBroker: true, NATS: o, NoNATSConn: true, ClientID: "poison-nkey", LogLevel: "info",
		Env: map[string]string{"BRIDGE_NATS_NKEY_FILE": seedFile}})
	p := h.start()
	o2 := *o
	o2.Nkeys = []*server.NkeyUser{{Nkey: newPub}}
	if err := h.ns.ReloadOptions(&o2); err != nil {
		t.Fatal(err)
	}
	writeFile(t, seedFile, newSeed)
	waitFor(t, 30*time.Second, "/healthz 503 after the nkey rotation", func() bool { return p.healthz() == 503 })
}
