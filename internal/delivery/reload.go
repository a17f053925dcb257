package delivery

// SetRoutes replaces the route set for the reports routed from now on (a rules reload).
// A report takes the set in force when it is decoded and matched (Handle, Submit) and is
// delivered to the routes it matched then, to the end: reports in flight finish under the
// rules they started with. The dispatcher keeps its own copy of routes.
func (p *Dispatcher) SetRoutes(routes []Route) {
	set := append([]Route(nil), routes...)
	p.routes.Store(&set)
}

// Routes returns the route set in force (do not modify it).
func (p *Dispatcher) Routes() []Route { return p.routeSet() }

func (p *Dispatcher) routeSet() []Route {
	if s := p.routes.Load(); s != nil {
		return *s
	}
	return nil
}
