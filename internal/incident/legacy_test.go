package incident_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
)

// legacyKey is the key hash of the tested key as earlier versions wrote it into markers.
func legacyKey() string {
	h := sha256.New()
	h.Write([]byte(routeName))
	for _, f := range []string{"tenant=scs", "pipeline=periodic-daily", "project=SovereignCloudStack/k8s-cluster-api-provider", "branch=main"} {
		h.Write([]byte{0})
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// An open incident written by an earlier version (marker line in its texts) is taken
// over at start, with and without a key store: no second incident, the count goes on,
// and the closing PATCH removes the marker line from the description.
func TestIncidentWithMarkerLineTakenOver(t *testing.T) {
	for _, withStore := range []bool{false, true} {
		t.Run(map[bool]string{false: "reference", true: "key store"}[withStore], func(t *testing.T) {
			var e *env
			if withStore {
				e = newStoreEnv(t, nil)
			} else {
				e = newEnv(t, statuspagefake.Options{}, nil)
			}
			c, err := statuspage.NewClient(e.copts)
			if err != nil {
				t.Fatal(err)
			}
			marker := "zuul-bridge: key=test/" + legacyKey() + " route=" + routeName + " report=0123456789abcdef0123"
			id, err := c.CreateIncident(t.Context(), statuspage.NewIncident{
				DisplayName: "Zuul periodic-daily failing: SovereignCloudStack/k8s-cluster-api-provider (main)",
				Description: "The Zuul pipeline periodic-daily (tenant scs) reported FAILURE.\n\n" + marker,
				BeganAt:     hours(0), Phase: statuspage.PhaseRef{Generation: 1, Order: 1},
				Affects: []statuspage.Impact{{Reference: e.fake.ComponentID("Zuul"), Type: e.fake.ImpactTypeID("Unknown")}},
			})
			if err != nil {
				t.Fatal(err)
			}
			at := hours(24)
			if _, err := c.PostUpdate(t.Context(), id, statuspage.IncidentUpdate{DisplayName: "Still failing (run 2)",
				Description: "periodic-daily reported FAILURE again.\n\n" + strings.Replace(marker, "0123", "4567", 1), CreatedAt: &at}); err != nil {
				t.Fatal(err)
			}
			e.restart()
			eq(t, "open incidents after start", e.m.OpenIncidents(), 1)
			e.send(fail(3, hours(48)))
			e.send(ok(4, hours(72)))
			incs := e.incidents()
			if len(incs) != 1 || len(incs[0].Updates) != 3 {
				t.Fatalf("incidents: %+v, want the one, with 3 updates", incs)
			}
			inc := incs[0]
			if !strings.Contains(inc.Updates[1].Description, "3 nights in a row") {
				t.Errorf("count does not go on: %q", inc.Updates[1].Description)
			}
			eq(t, "ended", inc.EndedAt != nil, true)
			if strings.Contains(inc.Description, "zuul-bridge:") || strings.Contains(inc.Description, "\n\n") {
				t.Errorf("marker line left in the description: %q", inc.Description)
			}
			if got := strings.Contains(inc.Description, "Reported and closed automatically (ref "); got == withStore {
				t.Errorf("reference sentence %v with key store %v: %q", got, withStore, inc.Description)
			}
			e.restart()
			eq(t, "open incidents after the end", e.m.OpenIncidents(), 0)
		})
	}
}
