package statuspagefake

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// apiRequest is a routed request with its bound path parameters.
type apiRequest struct {
	r     *http.Request
	body  []byte
	id    string // canonical uuid of {componentId}/{impactTypeId}/{incidentId}
	name  string // {severityName}
	order int    // {updateOrder}
}

type handler func(f *Fake, req *apiRequest) reply

// route is one path pattern; segments starting with "{" are parameters.
type route struct {
	pattern string
	methods map[string]handler
}

func routes() []route {
	return []route{
		{"/phases", map[string]handler{"GET": (*Fake).getPhases, "POST": (*Fake).createPhases}},
		{"/impacttypes", map[string]handler{"GET": (*Fake).listImpactTypes, "POST": (*Fake).createImpactType}},
		{"/impacttypes/{impactTypeId}", map[string]handler{"GET": (*Fake).getImpactType, "PATCH": (*Fake).patchImpactType, "DELETE": (*Fake).deleteImpactType}},
		{"/severities", map[string]handler{"GET": (*Fake).listSeverities, "POST": (*Fake).createSeverity}},
		{"/severities/{severityName}", map[string]handler{"GET": (*Fake).getSeverity, "PATCH": (*Fake).patchSeverity, "DELETE": (*Fake).deleteSeverity}},
		{"/components", map[string]handler{"GET": (*Fake).listComponents, "POST": (*Fake).createComponent}},
		{"/components/{componentId}", map[string]handler{"GET": (*Fake).getComponent, "PATCH": (*Fake).patchComponent, "DELETE": (*Fake).deleteComponent}},
		{"/incidents", map[string]handler{"GET": (*Fake).listIncidents, "POST": (*Fake).createIncident}},
		{"/incidents/{incidentId}", map[string]handler{"GET": (*Fake).getIncident, "PATCH": (*Fake).patchIncident, "DELETE": (*Fake).deleteIncident}},
		{"/incidents/{incidentId}/updates", map[string]handler{"GET": (*Fake).listUpdates, "POST": (*Fake).createUpdate}},
		{"/incidents/{incidentId}/updates/{updateOrder}", map[string]handler{"GET": (*Fake).getUpdate, "PATCH": (*Fake).patchUpdate, "DELETE": (*Fake).deleteUpdate}},
		{"/openapi.json", map[string]handler{"GET": (*Fake).getOpenAPI}},
	}
}

// dispatch routes like echo: unknown path (including a trailing slash) 404,
// known path with another method 405, then path parameters are bound (400
// "Invalid format for parameter ..."), then the handler runs.
func (f *Fake) dispatch(r *http.Request, body []byte) reply {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	for _, rt := range routes() {
		pat := strings.Split(strings.TrimPrefix(rt.pattern, "/"), "/")
		params, ok := matchSegments(pat, segs)
		if !ok {
			continue
		}
		h, ok := rt.methods[r.Method]
		if !ok {
			return messageReply(http.StatusMethodNotAllowed, "Method Not Allowed")
		}
		req := &apiRequest{r: r, body: body}
		for _, p := range params {
			if rep, ok := req.bind(p[0], p[1]); !ok {
				return rep
			}
		}
		return h(f, req)
	}
	return messageReply(http.StatusNotFound, "Not Found")
}

// matchSegments returns the (name, value) pairs of the path parameters in
// path order, which is the order the server binds (and rejects) them.
func matchSegments(pat, segs []string) ([][2]string, bool) {
	if len(pat) != len(segs) {
		return nil, false
	}
	var params [][2]string
	for i, p := range pat {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return nil, false
			}
			params = append(params, [2]string{strings.Trim(p, "{}"), segs[i]})
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return params, true
}

func (req *apiRequest) bind(name, v string) (reply, bool) {
	invalid := func(err error, typ string) (reply, bool) {
		return messageReply(http.StatusBadRequest, fmt.Sprintf(
			"Invalid format for parameter %s: error unmarshaling '%s' text as %s: %v", name, v, typ, err)), false
	}
	switch name {
	case "severityName":
		req.name = v
	case "updateOrder":
		n, err := strconv.Atoi(v)
		if err != nil {
			return invalid(err, "*int")
		}
		req.order = n
	default:
		id, err := parseUUID(v)
		if err != nil {
			return invalid(err, "*uuid.UUID")
		}
		req.id = id
	}
	return reply{}, true
}

func (f *Fake) getOpenAPI(*apiRequest) reply {
	return reply{status: http.StatusOK, body: f.spec.json}
}
