package statuspagefake

import "time"

// tri is SQL's three-valued logic: comparisons with NULL are unknown, and
// WHERE keeps a row only if the condition is true.
type tri int8

const (
	triFalse tri = iota
	triUnknown
	triTrue
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

func (a tri) and(b tri) tri { return min(a, b) }
func (a tri) or(b tri) tri  { return max(a, b) }
func (a tri) not() tri      { return triTrue - a }

// lt and gt compare a nullable column with a parameter.
func lt(col *time.Time, p time.Time) tri {
	if col == nil {
		return triUnknown
	}
	return triOf(col.Before(p))
}

func gt(col *time.Time, p time.Time) tri {
	if col == nil {
		return triUnknown
	}
	return triOf(col.After(p))
}

func le(col *time.Time, p time.Time) tri {
	if col == nil {
		return triUnknown
	}
	return triOf(!col.After(p))
}

// inWindow is the exact WHERE clause of GET /incidents:
//
//	NOT (began_at < :start AND ended_at < :start)
//	AND NOT (began_at > :end AND ended_at > :end)
//	OR (ended_at IS NULL AND began_at <= :end)
//
// AND binds tighter than OR. Open incidents with beganAt <= end are listed
// however old; open incidents with beganAt NULL never are.
func inWindow(inc *incident, start, end time.Time) bool {
	a := lt(inc.beganAt, start).and(lt(inc.endedAt, start)).not()
	b := gt(inc.beganAt, end).and(gt(inc.endedAt, end)).not()
	c := triOf(inc.endedAt == nil).and(le(inc.beganAt, end))
	return a.and(b).or(c) == triTrue
}
