package statuspage

import "time"

// Wire types of the SCS status page API (status-page-openapi v1.1.2). The
// generated module upstream is not fetchable, so these are our own. Every field is optional
// on the wire; pointers mark the ones whose absence matters.

// PhaseRef points at one phase: an index into the phase list of a generation.
type PhaseRef struct {
	Generation int `json:"generation"`
	Order      int `json:"order"`
}

// Impact is one element of Incident.Affects (Reference = component id) and of
// Component.ActivelyAffectedBy (Reference = incident id).
type Impact struct {
	Reference string `json:"reference,omitempty"`
	Type      string `json:"type,omitempty"`
	Severity  *int   `json:"severity,omitempty"`
}

// Incident as read from the API. Times are instants: the server renders them in its own
// time zone, so compare with time methods, never as strings.
type Incident struct {
	ID          string     `json:"id"`
	DisplayName string     `json:"displayName"`
	Description string     `json:"description"`
	BeganAt     *time.Time `json:"beganAt"`
	EndedAt     *time.Time `json:"endedAt"`
	Phase       *PhaseRef  `json:"phase"`
	Affects     []Impact   `json:"affects"`
	Updates     []int      `json:"updates"`
}

// NewIncident is the body of POST /incidents. Phase is not a pointer on purpose: an
// incident without a phase makes every later read of it fail.
type NewIncident struct {
	DisplayName string    `json:"displayName"`
	Description string    `json:"description"`
	BeganAt     time.Time `json:"beganAt"`
	Phase       PhaseRef  `json:"phase"`
	Affects     []Impact  `json:"affects"`
}

// EndIncident is the body of the PATCH that ends an incident. There is deliberately no
// way to send "endedAt": null (it is ignored by the server and would only suggest that an
// incident can be reopened) and no way to leave out the phase.
type EndIncident struct {
	EndedAt     time.Time `json:"endedAt"`
	Phase       PhaseRef  `json:"phase"`
	Description string    `json:"description,omitempty"`
}

// IncidentUpdate is an entry of GET /incidents/{id}/updates and the body of its POST
// (Order is response-only).
type IncidentUpdate struct {
	Order       int        `json:"order,omitempty"`
	DisplayName string     `json:"displayName"`
	Description string     `json:"description"`
	CreatedAt   *time.Time `json:"createdAt,omitempty"`
}

// Component as listed by GET /components.
type Component struct {
	ID                 string            `json:"id"`
	DisplayName        string            `json:"displayName"`
	Labels             map[string]string `json:"labels"`
	ActivelyAffectedBy []Impact          `json:"activelyAffectedBy"`
}

// ImpactType is a labelled id ("Performance Degradation", "Unknown", ...).
type ImpactType struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Description string `json:"description,omitempty"`
}

// Severity is a named upper bound on the 0..100 scale.
type Severity struct {
	DisplayName string `json:"displayName"`
	Value       int    `json:"value"`
}

// PhaseList is one generation of phase names; a phase's order is its index.
type PhaseList struct {
	Generation int      `json:"generation"`
	Phases     []string `json:"phases"`
}
