package statuspagefake

import (
	"crypto/rand"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// state is the fake's database: tables as the real server's PostgreSQL
// schema has them. Nullable columns are pointers.
type state struct {
	components  []*component  // insertion order, like a PostgreSQL heap
	impactTypes []*impactType // insertion order
	severities  []*severity
	phases      []phaseRow
	incidents   map[string]*incident
	seq         int // insertion counter for incidents
}

type component struct {
	id          string
	displayName *string
	labels      map[string]string
}

type impactType struct {
	id          string
	displayName string // NOT NULL
	description *string
}

type severity struct {
	displayName string
	value       int // UNIQUE
}

// phaseRow is one row of phases(generation, order, name). A nil name is a
// phantom row inserted by v1.0.0 for an unknown phase reference.
type phaseRow struct {
	generation, order int
	name              *string
}

type impact struct {
	component, impactType string
	severity              *int
}

type incident struct {
	id               string
	seq              int
	displayName      *string
	description      *string
	beganAt, endedAt *time.Time
	phase            *Phase
	affects          []impact
	updates          map[int]*update
}

type update struct {
	order                    int
	displayName, description *string
	createdAt                time.Time
}

func newState() *state {
	return &state{incidents: map[string]*incident{}}
}

// provisionFile mirrors the server's provisioning YAML keys.
type provisionFile struct {
	ImpactTypes []struct {
		DisplayName string  `yaml:"displayname"`
		Description *string `yaml:"description"`
	} `yaml:"impactTypes"`
	Components []struct {
		DisplayName string            `yaml:"displayname"`
		Labels      map[string]string `yaml:"labels"`
	} `yaml:"components"`
	Phases []struct {
		Name string `yaml:"name"`
	} `yaml:"phases"`
	Severities []struct {
		Name  string `yaml:"name"`
		Value int    `yaml:"value"`
	} `yaml:"severities"`
}

// provision fills the tables like the server does at start-up (phases as
// generation 1).
func (s *state) provision(data []byte) error {
	var p provisionFile
	if err := yaml.Unmarshal(data, &p); err != nil {
		return err
	}
	for _, it := range p.ImpactTypes {
		s.impactTypes = append(s.impactTypes, &impactType{id: newUUID(), displayName: it.DisplayName, description: it.Description})
	}
	for _, c := range p.Components {
		labels := c.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		s.components = append(s.components, &component{id: newUUID(), displayName: ptr(c.DisplayName), labels: labels})
	}
	for i, ph := range p.Phases {
		s.phases = append(s.phases, phaseRow{generation: 1, order: i, name: ptr(ph.Name)})
	}
	for _, sv := range p.Severities {
		s.severities = append(s.severities, &severity{displayName: sv.Name, value: sv.Value})
	}
	return nil
}

func (s *state) component(id string) *component {
	for _, c := range s.components {
		if c.id == id {
			return c
		}
	}
	return nil
}

func (s *state) impactType(id string) *impactType {
	for _, it := range s.impactTypes {
		if it.id == id {
			return it
		}
	}
	return nil
}

// currentGeneration is max(generation) over all phase rows, 0 if none.
func (s *state) currentGeneration() int {
	g := 0
	for _, p := range s.phases {
		g = max(g, p.generation)
	}
	return g
}

func (s *state) phaseExists(p Phase) bool {
	for _, r := range s.phases {
		if r.generation == p.Generation && r.order == p.Order {
			return true
		}
	}
	return false
}

// ensurePhase is v1.0.0's association upsert: an unknown reference inserts a
// phantom row with NULL name (status-page-api issue #41).
func (s *state) ensurePhase(p Phase) {
	if !s.phaseExists(p) {
		s.phases = append(s.phases, phaseRow{generation: p.Generation, order: p.Order})
	}
}

func (s *state) hasPhantomPhase() bool {
	for _, r := range s.phases {
		if r.name == nil {
			return true
		}
	}
	return false
}

// componentReferenced reports whether any impact (ended incidents too)
// references the component: the FK makes DELETE fail then.
func (s *state) componentReferenced(id string) bool {
	for _, inc := range s.incidents {
		for _, im := range inc.affects {
			if im.component == id {
				return true
			}
		}
	}
	return false
}

func (s *state) impactTypeReferenced(id string) bool {
	for _, inc := range s.incidents {
		for _, im := range inc.affects {
			if im.impactType == id {
				return true
			}
		}
	}
	return false
}

func (inc *incident) hasImpact(component, impactType string) bool {
	for _, im := range inc.affects {
		if im.component == component && im.impactType == impactType {
			return true
		}
	}
	return false
}

// nextOrder is max(order)+1, 0 for the first update.
func (inc *incident) nextOrder() int {
	n := 0
	for o := range inc.updates {
		n = max(n, o+1)
	}
	return n
}

// newUUID returns a random (version 4) UUID like the server generates.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func ptr[T any](v T) *T { return &v }

// dbTime is what a timestamptz column keeps: microsecond precision.
func dbTime(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

// insert stores inc, remembering the insertion order.
func (s *state) insert(inc *incident) {
	s.seq++
	inc.seq = s.seq
	if inc.updates == nil {
		inc.updates = map[int]*update{}
	}
	s.incidents[inc.id] = inc
}
