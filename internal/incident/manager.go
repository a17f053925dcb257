// Package incident opens, updates and resolves incidents on the SCS status page from Zuul
// reports: the `statuspage:` route configuration and its templates, the catalogue of
// names, the lifecycle per incident key, recovery after a restart, and the protocol
// between replicas over a shared compare-and-set store. It talks to the server through
// package statuspage and does not retry by itself: Send says whether a report should come
// again (package delivery owns backoff and deadlines).
package incident

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// ManagerOptions configure NewManager.
type ManagerOptions struct {
	Client *statuspage.Client
	Log    zerolog.Logger
	// Registerer, when set, gets the lifecycle counters and the open-incidents gauge.
	Registerer      prometheus.Registerer
	Observer        Observer         // nil = the Registerer's counters, or nothing
	Now             func() time.Time // nil = time.Now
	RefreshInterval time.Duration    // catalogue (names -> ids) refresh; <= 0 = 5m
	// IncidentRefreshInterval is how often the incident list is read for maintenance
	// windows and incidents ended by hand (live.go); <= 0 = 1m. It bounds how stale
	// those are on the hot path.
	IncidentRefreshInterval time.Duration
	// BridgeID names the owners in KeyStore entries. "" = "zuul-bridge".
	BridgeID string
	// KeyStore is shared by the replicas of one deployment (one bucket per BridgeID): the
	// store is where the bridge knows its incidents from (the texts carry no marker), and
	// a key is claimed before its incident is opened, so that two replicas never open two
	// incidents for one key (replicas.go). Required before Start; SetKeyStore sets it
	// when it is opened only after NewManager.
	KeyStore KeyStore
	// ReplicaID names this replica in KeyStore entries and must differ between running
	// replicas; a StatefulSet pod name is right (a restarted pod then recognises its own
	// claims at once). "" = host name plus a random suffix.
	ReplicaID string
	// ClaimTimeout is how long a replica holds an incident key for one write to the
	// status page: the claim before POST /incidents, and the closing update and PATCH of
	// a resolve (and a pending update, see replicas.go). The holder sends its requests with a deadline
	// of half of it (a hung request is cut off, so nothing it sent can land later); another
	// replica that meets the hold looks at the page first and adopts what it finds at once
	// (the incident the claim describes; a resolve that went through), and takes the key
	// over only once the hold is older than ClaimTimeout and what it guards is not on the
	// page. The other half covers a request the server still finishes after its client
	// gave up, and clock differences between replicas. Keep it at least twice the status
	// page client's request timeout (10 s). <= 0 = 30s.
	ClaimTimeout time.Duration
}

// Manager is the status page sink of one process: it shares the client and the name
// catalogue between routes and keeps the state of every incident key. Every key is
// serialised by its own lock, so one incident never sees two writes at once (the server
// numbers updates by max+1) and a slow key does not stall the others.
type Manager struct {
	client   *statuspage.Client
	log      zerolog.Logger
	obs      Observer
	now      func() time.Time
	refresh  time.Duration
	incEvery time.Duration
	bridgeID string
	kv       KeyStore
	owner    string        // bridge id/replica id, in KeyStore entries
	claimTTL time.Duration // see ManagerOptions.ClaimTimeout
	started  atomic.Bool
	open     atomic.Int64             // incidents held open, maintained by keyState.setIncident
	incSeq   atomic.Uint64            // numbers the incidents set on keys (RefreshIncidents)
	live     atomic.Pointer[liveView] // maintenance windows of the last incident list
	cat      atomic.Pointer[catalog]  // the last catalogue read: derived components resolve against it

	mu     sync.Mutex
	routes map[string]*Sink
	order  []*Sink
	keys   map[string]*keyState
}

// recoveryLookback bounds the ended incidents the incident list reads (open ones are
// always listed, whatever their age).
const recoveryLookback = 30 * 24 * time.Hour

const defaultRefresh = 5 * time.Minute

// NewManager builds a manager; add routes, then Start it.
func NewManager(o ManagerOptions) *Manager {
	m := &Manager{
		client:   o.Client,
		log:      o.Log.With().Str("component", "statuspage").Logger(),
		obs:      o.Observer,
		now:      o.Now,
		refresh:  o.RefreshInterval,
		incEvery: o.IncidentRefreshInterval,
		bridgeID: sanitizeBridgeID(o.BridgeID),
		kv:       o.KeyStore,
		claimTTL: o.ClaimTimeout,
		routes:   map[string]*Sink{},
		keys:     map[string]*keyState{},
	}
	if o.Registerer != nil {
		if mt := registerMetrics(o.Registerer, m); m.obs == nil {
			m.obs = mt
		}
	}
	if m.obs == nil {
		m.obs = NopObserver{}
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.refresh <= 0 {
		m.refresh = defaultRefresh
	}
	if m.incEvery <= 0 {
		m.incEvery = defaultIncidentRefresh
	}
	if m.claimTTL <= 0 {
		m.claimTTL = defaultClaimTimeout
	}
	m.owner = m.bridgeID + "/" + replicaID(o.ReplicaID)
	return m
}

// SetKeyStore gives the manager its KeyStore when it is known only after construction (the
// bucket is opened in the background). Call it before Start.
func (m *Manager) SetKeyStore(ks KeyStore) {
	if m.started.Load() {
		panic("incident: SetKeyStore after Start")
	}
	m.kv = ks
}

// AddRoute validates cfg and registers the route; call it before Start.
func (m *Manager) AddRoute(name string, cfg RouteConfig) (*Sink, error) {
	if name == "" {
		return nil, errors.New("statuspage: route name must not be empty")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("statuspage: route %s: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started.Load() {
		return nil, fmt.Errorf("statuspage: route %s: add routes before Start", name)
	}
	if _, dup := m.routes[name]; dup {
		return nil, fmt.Errorf("statuspage: route %s: defined twice", name)
	}
	s := &Sink{m: m, name: name, cfg: cfg, log: m.log.With().Str("route", name).Logger()}
	m.routes[name] = s
	m.order = append(m.order, s)
	return s, nil
}

// Start resolves every route's names to ids (an unknown name is an error that lists the
// names the server has) and then finds the bridge's own incidents again, so that no report
// is handled before the state of its key is known. An unreachable API is an error; the
// caller decides whether to retry or exit. Cost: 4 GETs for the catalogue, 1 GET for the
// incident list (which also seeds the maintenance view), 1 GET per open incident of the
// bridge.
func (m *Manager) Start(ctx context.Context) error {
	if m.client == nil {
		return errors.New("statuspage: no client")
	}
	if err := m.refreshCatalog(ctx); err != nil {
		return err
	}
	if err := m.recover(ctx); err != nil {
		return fmt.Errorf("statuspage: find open incidents: %w", err)
	}
	m.mu.Lock()
	m.started.Store(true)
	m.mu.Unlock()
	return nil
}

// refreshCatalog re-reads the names and re-resolves every route. At Start any error is
// fatal; on a later refresh a route keeps its previous ids when its names no longer resolve.
func (m *Manager) refreshCatalog(ctx context.Context) error {
	cat, err := fetchCatalog(ctx, m.client)
	if err != nil {
		return fmt.Errorf("statuspage: read catalogue: %w", err)
	}
	m.cat.Store(cat)
	m.mu.Lock()
	sinks := append([]*Sink(nil), m.order...)
	m.mu.Unlock()
	for _, s := range sinks {
		s.recheckUnknown(cat)
	}
	var errs []error
	for _, s := range sinks {
		t, err := cat.resolve(&s.cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("statuspage: route %s: %w", s.name, err))
			continue
		}
		s.target.Store(&t)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrUnknownNames, errors.Join(errs...))
	}
	return nil
}

// ErrUnknownNames: a route names a component, impact type, severity or phase the server
// does not have. It is a configuration error, not an outage: retrying will not help.
var ErrUnknownNames = errors.New("statuspage: the rules name things the status page does not have")

// Run refreshes the catalogue every RefreshInterval, the incident list (maintenance,
// hand-ended incidents) every IncidentRefreshInterval, and resolves incidents whose quiet
// period ran out (checked every minute, or every RefreshInterval if shorter). It returns
// nil when ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	quietEvery := min(time.Minute, m.refresh)
	quiet := time.NewTicker(quietEvery)
	defer quiet.Stop()
	refresh := time.NewTicker(m.refresh)
	defer refresh.Stop()
	incidents := time.NewTicker(m.incEvery)
	defer incidents.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			if err := m.refreshCatalog(ctx); err != nil {
				m.log.Error().Err(err).Msg("catalogue refresh failed; keeping the previous ids")
			}
		case <-incidents.C:
			if err := m.RefreshIncidents(ctx); err != nil {
				m.log.Error().Err(err).Msg("incident refresh failed; maintenance and hand-ended incidents are as last read")
			}
		case <-quiet.C:
			if err := m.ResolveQuiet(ctx); err != nil {
				m.log.Warn().Err(err).Msg("quiet-period resolution failed; will try again")
			}
			m.EvictIdle()
		}
	}
}

// OpenIncidents returns the number of incidents the bridge currently holds open (for a gauge).
func (m *Manager) OpenIncidents() int {
	return int(m.open.Load())
}

func (m *Manager) snapshot() []*keyState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*keyState, 0, len(m.keys))
	for _, ks := range m.keys {
		out = append(out, ks)
	}
	return out
}

// state returns the state of a key, creating it. Callers lock ks.mu themselves; m.mu is
// never held while waiting for a key.
func (m *Manager) state(hash string, s *Sink) *keyState {
	m.mu.Lock()
	defer m.mu.Unlock()
	ks, ok := m.keys[hash]
	if !ok {
		ks = &keyState{mu: newChanMutex(), hash: hash, sink: s, applied: newRecent(appliedMemory)}
		m.keys[hash] = ks
	}
	ks.touched = m.now()
	return ks
}

func (m *Manager) lookup(hash string) *keyState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[hash]
}
