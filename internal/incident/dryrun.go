package incident

import (
	"fmt"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// dryRun prints the calls a report would cause instead of making them (ManagerOptions.
// DryRun, for the demo without a status page). Nothing is applied, so every failure plans
// an opening.
func (s *Sink) dryRun(ev *zuul.Event) {
	for _, call := range s.Plan(ev) {
		fmt.Fprintf(s.m.dryRun, "STATUS PAGE (%s, not called) %s\n", s.name, call)
	}
}
