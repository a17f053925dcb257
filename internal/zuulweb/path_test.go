package zuulweb

import (
	"context"
	"testing"
)

// TestTenantPathRefusesDotSegments: "." and ".." would make the request URL another
// path (/api/tenant/../buildsets is /api/buildsets), so they are no tenant names.
func TestTenantPathRefusesDotSegments(t *testing.T) {
	for _, tenant := range []string{".", "..", "", "a/b", "a?b", "a#b"} {
		if _, err := tenantPath(tenant, "buildsets"); err == nil {
			t.Errorf("tenantPath(%q) accepted", tenant)
		}
	}
	for _, tenant := range []string{"scs", "a.b", "...", "opendev"} {
		if _, err := tenantPath(tenant, "buildsets"); err != nil {
			t.Errorf("tenantPath(%q): %v", tenant, err)
		}
	}
	c, err := New(Options{BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Buildsets(context.Background(), "..", Query{}); err == nil {
		t.Error("Buildsets accepted the tenant \"..\"")
	}
}
