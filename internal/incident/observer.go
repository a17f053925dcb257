package incident

// Observer is told about lifecycle steps, so the composition root can count them without
// this package importing a metrics library. Methods are called synchronously from Send and
// from Run and must not block.
type Observer interface {
	IncidentOpened(route string)
	IncidentUpdated(route string)
	IncidentResolved(route string)
	// Suppressed: a failing report that did not open or update an incident because of
	// "maintenance" (the component is under maintenance) or "hand-ended" (a person ended
	// the incident of this outage).
	Suppressed(route, reason string)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) IncidentOpened(string)     {}
func (NopObserver) IncidentUpdated(string)    {}
func (NopObserver) IncidentResolved(string)   {}
func (NopObserver) Suppressed(string, string) {}
