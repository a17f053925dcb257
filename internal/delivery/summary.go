package delivery

import (
	"strings"

	"github.com/rs/zerolog"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// One line per decoded report, at Options.ReportLevel, says what became of it: kept (the
// routes that took it, and the route/sink pairs that dead-lettered it), or dropped and
// why. A rejected payload has its warn line instead; the debug "delivered" lines say the
// same per sink, and retries and failures have their own warn and error lines.

// kept logs the summary of a settled report.
func (p *Dispatcher) kept(ev *zuul.Event, routes []routed, deadLettered []string) {
	e := p.o.Log.WithLevel(p.o.ReportLevel)
	if !e.Enabled() {
		return
	}
	names := make([]string, len(routes))
	jobs := 0
	for i := range routes {
		names[i] = routes[i].route.Name
		if routes[i].evs != nil {
			jobs += len(routes[i].evs)
		}
	}
	e = reportFields(e, ev).Str("routes", strings.Join(names, ","))
	if jobs > 0 {
		e = e.Int("job_events", jobs) // the events of routes that split the report
	}
	if len(deadLettered) > 0 {
		e.Str("dead_lettered", strings.Join(deadLettered, ",")).Msg("report kept, but dead-lettered for some sinks")
		return
	}
	e.Msg("report kept")
}

// dropped logs the summary of a report no route wants.
func (p *Dispatcher) dropped(ev *zuul.Event) {
	if e := p.o.Log.WithLevel(p.o.ReportLevel); e.Enabled() {
		reportFields(e, ev).Msg("report dropped: no route matches")
	}
}

// reportFields names a report compactly: id, pipeline, project, and its result, or the
// reporter action for a report without one (enqueue, start, ...).
func reportFields(e *zerolog.Event, ev *zuul.Event) *zerolog.Event {
	e = e.Str("id", ev.ID).Str("pipeline", ev.Pipeline).Str("project", ev.Project)
	if ev.Result != "" {
		return e.Str("result", ev.Result)
	}
	return e.Str("action", ev.Action)
}
