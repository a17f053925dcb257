package incident_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/incident"
	"github.com/SovereignCloudStack/zuul-bridge/internal/kvstore"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage/statuspagefake"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// reportOf is report n of its own project: one incident key per n.
func reportOf(n int, outcome zuul.Outcome, ts time.Time) *zuul.Event {
	e := ev(n, outcome, ts)
	e.Project = fmt.Sprintf("org/project-%d", n)
	return e
}

// TestIdleKeysAreForgotten: keys with nothing open are forgotten a day after their last
// report; a key with an open incident is kept, and still resolves afterwards.
func TestIdleKeysAreForgotten(t *testing.T) {
	e := newEnv(t, statuspagefake.Options{}, nil)
	for n := range 1000 {
		e.send(reportOf(n, zuul.OutcomeSuccess, hours(0)))
	}
	e.send(reportOf(5000, zuul.OutcomeFailure, hours(0))) // opens an incident
	if got := e.m.Keys(); got != 1001 {
		t.Fatalf("%d keys, want 1001", got)
	}
	e.clock.Set(hours(23))
	if n := e.m.EvictIdle(); n != 0 {
		t.Fatalf("%d keys forgotten before they were idle for a day", n)
	}
	e.clock.Set(hours(25))
	if n := e.m.EvictIdle(); n != 1000 || e.m.Keys() != 1 {
		t.Fatalf("forgot %d keys, %d left; want the 1000 idle ones forgotten and the open incident's key kept", n, e.m.Keys())
	}
	e.send(reportOf(5000, zuul.OutcomeSuccess, hours(25)))
	if inc := e.incidents(); len(inc) != 1 || inc[0].EndedAt == nil {
		t.Fatalf("the kept key's incident was not resolved: %+v", inc)
	}
}

// BenchmarkManyKeys feeds 100,000 distinct incident keys (successes without an incident,
// so no API calls: the case of a reconciler reading back every buildset) and reports the
// heap in use after a GC, with every key held and after the idle keys were forgotten.
// Run: go test -run '^$' -bench ManyKeys -benchtime 1x ./internal/incident
func BenchmarkManyKeys(b *testing.B) {
	const keys = 100_000
	fake := statuspagefake.New(b, statuspagefake.Options{})
	cfg := incident.DefaultRouteConfig()
	cfg.Component = "Zuul"
	for range b.N {
		now := t0
		c, err := statuspage.NewClient(statuspage.ClientOptions{BaseURL: fake.URL()})
		if err != nil {
			b.Fatal(err)
		}
		m := incident.NewManager(incident.ManagerOptions{Client: c, Log: zerolog.Nop(), BridgeID: "bench",
			Now: func() time.Time { return now }, KeyStore: emptyStore{}})
		sink, err := m.AddRoute("r", cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		base := heapInuse()
		for n := range keys {
			if _, err := sink.Send(context.Background(), reportOf(n, zuul.OutcomeSuccess, now)); err != nil {
				b.Fatal(err)
			}
		}
		held := heapInuse() - base
		if m.Keys() != keys {
			b.Fatalf("%d keys held", m.Keys())
		}
		now = now.Add(incident.KeyIdleTTL + time.Minute)
		m.EvictIdle()
		after := heapInuse() - base
		b.ReportMetric(float64(held)/(1<<20), "heap-MiB-100k-keys")
		b.ReportMetric(float64(held)/keys, "heap-B/key")
		b.ReportMetric(float64(after)/(1<<20), "heap-MiB-after-evict")
		runtime.KeepAlive(m)
	}
}

// emptyStore is a key store that holds nothing, so that the benchmark measures the
// manager's memory per key, not 100,000 round trips to a bucket (every key here only
// passes, which reads its entry and writes nothing).
type emptyStore struct{}

func (emptyStore) Get(context.Context, string) ([]byte, uint64, error) {
	return nil, 0, kvstore.ErrNoKey
}
func (emptyStore) Create(context.Context, string, []byte) (uint64, error) {
	return 0, errors.New("emptyStore: read only")
}
func (emptyStore) Update(context.Context, string, []byte, uint64) (uint64, error) {
	return 0, errors.New("emptyStore: read only")
}
func (emptyStore) Delete(context.Context, string, uint64) error {
	return errors.New("emptyStore: read only")
}

func heapInuse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
