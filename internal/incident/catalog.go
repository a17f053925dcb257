package incident

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/statuspage"
)

// catalog is what the server knows by name: components, impact types, severities and the
// current phase generation. Ids are random per database, so routes name things and the
// catalog turns names into ids at Start and on every refresh.
type catalog struct {
	components  []statuspage.Component
	impactTypes []statuspage.ImpactType
	severities  []statuspage.Severity
	phases      statuspage.PhaseList
}

// fetchCatalog costs four GETs.
func fetchCatalog(ctx context.Context, c *statuspage.Client) (*catalog, error) {
	var cat catalog
	var err error
	if cat.components, err = c.ListComponents(ctx, time.Time{}); err != nil {
		return nil, fmt.Errorf("list components: %w", err)
	}
	if cat.impactTypes, err = c.ListImpactTypes(ctx); err != nil {
		return nil, fmt.Errorf("list impact types: %w", err)
	}
	if cat.severities, err = c.ListSeverities(ctx); err != nil {
		return nil, fmt.Errorf("list severities: %w", err)
	}
	if cat.phases, err = c.GetPhases(ctx); err != nil {
		return nil, fmt.Errorf("get phases: %w", err)
	}
	return &cat, nil
}

// target is a route's names resolved to what goes on the wire.
type target struct {
	componentID  string
	impactTypeID string
	severity     int
	open         statuspage.PhaseRef
	resolve      statuspage.PhaseRef
}

// resolve maps a validated route config onto the catalog; every unknown name is reported,
// with the names the server has.
func (cat *catalog) resolve(cfg *RouteConfig) (target, error) {
	var t target
	var errs []error
	if !cfg.derived() { // a derived component is resolved per report (componentID)
		spec := componentSpec{name: cfg.Component, labels: cfg.ComponentLabels}
		key := "component"
		if cfg.Component == "" {
			key = "component_labels"
		}
		id, err := cat.componentID(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		t.componentID = id
	}

	var names []string
	for _, it := range cat.impactTypes {
		names = append(names, it.DisplayName)
		if it.DisplayName == cfg.ImpactType && it.ID != "" {
			t.impactTypeID = it.ID
		}
	}
	if t.impactTypeID == "" {
		errs = append(errs, fmt.Errorf("impact_type: no impact type named %q (the server has: %s)", cfg.ImpactType, list(names)))
	}

	spec, err := parseSeverity(cfg.Severity)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("severity: %v", err))
	case spec.name == "":
		t.severity = spec.value
	default:
		t.severity = -1
		names = names[:0]
		for _, s := range cat.severities {
			names = append(names, fmt.Sprintf("%s=%d", s.DisplayName, s.Value))
			if strings.EqualFold(s.DisplayName, spec.name) && (t.severity < 0 || s.DisplayName == spec.name) {
				t.severity = s.Value
			}
		}
		if t.severity < 1 || t.severity > 100 {
			if t.severity < 0 {
				errs = append(errs, fmt.Errorf("severity: no severity named %q (the server has: %s)", spec.name, list(names)))
			} else {
				errs = append(errs, fmt.Errorf("severity: %q is %d on the server, need 1..100 (0 is maintenance)", spec.name, t.severity))
			}
		}
	}

	ph := cat.phases
	if ph.Generation < 1 || len(ph.Phases) == 0 {
		errs = append(errs, errors.New("phases: the server has no phase list; an incident without phase breaks the status page"))
	} else {
		find := func(key, name string) (statuspage.PhaseRef, bool) {
			for i, p := range ph.Phases {
				if p == name {
					return statuspage.PhaseRef{Generation: ph.Generation, Order: i}, true
				}
			}
			errs = append(errs, fmt.Errorf("%s: no phase named %q in generation %d (the server has: %s)", key, name, ph.Generation, list(ph.Phases)))
			return statuspage.PhaseRef{}, false
		}
		t.open, _ = find("open_phase", cfg.OpenPhase)
		if cfg.ResolvePhase == "" {
			t.resolve = statuspage.PhaseRef{Generation: ph.Generation, Order: len(ph.Phases) - 1}
		} else {
			t.resolve, _ = find("resolve_phase", cfg.ResolvePhase)
		}
	}
	return t, errors.Join(errs...)
}

// componentID finds the one component spec names: by display name, or by labels.
func (cat *catalog) componentID(spec componentSpec) (string, error) {
	if spec.name != "" {
		var ids, names []string
		for _, c := range cat.components {
			names = append(names, c.DisplayName)
			if c.DisplayName == spec.name && c.ID != "" {
				ids = append(ids, c.ID)
			}
		}
		switch len(ids) {
		case 0:
			return "", fmt.Errorf("no component named %q (the server has: %s)", spec.name, list(names))
		case 1:
			return ids[0], nil
		default:
			return "", fmt.Errorf("%d components are named %q; use component_labels", len(ids), spec.name)
		}
	}
	var ids, all []string
	for _, c := range cat.components {
		all = append(all, c.DisplayName+labelString(c.Labels))
		if matchLabels(c.Labels, spec.labels) && c.ID != "" {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("%s match %d components, need exactly 1 (the server has: %s)", labelString(spec.labels), len(ids), list(all))
	}
	return ids[0], nil
}

// componentName is the display name of the component with id, "" if unknown.
func (cat *catalog) componentName(id string) string {
	for _, c := range cat.components {
		if c.ID == id {
			return c.DisplayName
		}
	}
	return ""
}

func matchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	var kv []string
	for k, v := range l {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return "{" + strings.Join(kv, ",") + "}"
}

func list(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
