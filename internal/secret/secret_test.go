package secret_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/secret"
)

func TestReadFileTrimsNewlineAndRereads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := secret.Value("ignored", p); err != nil || got != "s3cret" {
		t.Fatalf("Value = %q, %v; want s3cret", got, err)
	}
	if err := os.WriteFile(p, []byte("rotated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := secret.ReadFile(p); got != "rotated" {
		t.Fatalf("after rotation: %q", got)
	}
	if got, _ := secret.Value("plain", ""); got != "plain" {
		t.Fatalf("no file: %q", got)
	}
}

func TestTLSConfigNamesEveryBadFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := secret.TLSConfig(notPEM, filepath.Join(dir, "missing.crt"), filepath.Join(dir, "missing.key"))
	if err == nil || !strings.Contains(err.Error(), "CAFile") || !strings.Contains(err.Error(), "CertFile, KeyFile") {
		t.Fatalf("want both files named, got %v", err)
	}
	if tc, err := secret.TLSConfig("", "", ""); err != nil || tc.RootCAs != nil {
		t.Fatalf("no files: %v, %v", tc, err)
	}
}
