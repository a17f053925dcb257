package incident_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// TestStartKnownKeepsGoodRoutes: a route naming a component the server lacks is returned
// by StartKnown and stays unresolved, while the other route starts and applies reports;
// CheckNames reports the same without starting anything.
func TestStartKnownKeepsGoodRoutes(t *testing.T) {
	fake := statuspagefake.New(t, statuspagefake.Options{})
	c, err := statuspage.NewClient(statuspage.ClientOptions{BaseURL: fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	m := incident.NewManager(incident.ManagerOptions{Client: c, Log: zerolog.New(zerolog.NewTestWriter(t)), BridgeID: "test", KeyStore: newKeyStore(t)})
	good, bad := incident.DefaultRouteConfig(), incident.DefaultRouteConfig()
	good.Component, bad.Component = "Zuul", "Zuull"
	goodSink, err := m.AddRoute("good", good)
	if err != nil {
		t.Fatal(err)
	}
	badSink, err := m.AddRoute("typo", bad)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	unknown, err := m.CheckNames(ctx)
	if err != nil || len(unknown) != 1 || unknown["typo"] == nil || !strings.Contains(unknown["typo"].Error(), `no component named "Zuull"`) {
		t.Fatalf("CheckNames: %v, %v", unknown, err)
	}
	if badSink.Resolved() || goodSink.Resolved() {
		t.Fatal("CheckNames resolved a route")
	}
	unknown, err = m.StartKnown(ctx)
	if err != nil || len(unknown) != 1 || !strings.Contains(unknown["typo"].Error(), `no component named "Zuull"`) {
		t.Fatalf("StartKnown: %v, %v", unknown, err)
	}
	if badSink.Resolved() || !goodSink.Resolved() {
		t.Fatalf("resolved: typo %v, good %v", badSink.Resolved(), goodSink.Resolved())
	}
	if retry, err := goodSink.Send(ctx, ev(1, zuul.OutcomeFailure, t0)); err != nil {
		t.Fatalf("the good route after StartKnown: retry=%v err=%v", retry, err)
	}
	if n := len(fake.Incidents()); n != 1 {
		t.Fatalf("%d incidents, want 1", n)
	}
}
