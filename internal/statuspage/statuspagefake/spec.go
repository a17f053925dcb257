package statuspagefake

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// openapiYAML is status-page-openapi v1.0.0's openapi.yaml (spec 1.1.2).
//
//go:embed openapi.yaml
var openapiYAML []byte

// provisioningYAML is the SCS public deployment's provisioning file.
//
//go:embed provisioning.scs-public.yaml
var provisioningYAML []byte

// specValidator checks requests and responses against openapi.yaml.
type specValidator struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
	json   []byte // the spec served at /openapi.json
}

func newSpecValidator() (*specValidator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiYAML)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, err
	}
	js, err := doc.MarshalJSON()
	if err != nil {
		return nil, err
	}
	// The servers list names real hosts; the router would reject
	// 127.0.0.1:PORT with "no matching operation was found".
	doc.Servers = nil
	// Spec bug in 1.1.2: Incident and IncidentUpdate require properties they
	// do not have ("id", "order"). The real server does not validate requests,
	// so the fake must not reject bodies for it. Responses still require id
	// and order through IdField/Order in the *ResponseData allOfs.
	doc.Components.Schemas["Incident"].Value.Required = nil
	doc.Components.Schemas["IncidentUpdate"].Value.Required = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &specValidator{
		doc:    doc,
		router: router,
		json:   js,
		opts: &openapi3filter.Options{
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         true,
			// The spec gives defaults for start/end of GET /incidents which
			// the server never applies; do not let validation inject them.
			SkipSettingDefaults: true,
			// format: uuid is not checked by kin-openapi unless asked to.
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				// One line per violation: the path and the reason, without
				// dumping the schema.
				openapi3.DisableSchemaErrorDetails(),
				openapi3.WithStringFormatValidator("uuid",
					openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122)),
			},
		},
	}, nil
}

// validatedRequest is the outcome of request validation that response
// validation needs.
type validatedRequest struct {
	input *openapi3filter.RequestValidationInput // nil: no operation matched
}

// checkRequest validates r (whose body was already read into body) and
// returns the violations found.
func (s *specValidator) checkRequest(r *http.Request, body []byte) (validatedRequest, []string) {
	vr := r.Clone(context.Background())
	vr.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := s.router.FindRoute(vr)
	if err != nil {
		return validatedRequest{}, []string{fmt.Sprintf("%s %s: no operation in the spec: %v", r.Method, r.URL.Path, err)}
	}
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route, Options: s.opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return validatedRequest{input: in}, []string{fmt.Sprintf("%s %s: request: %v", r.Method, r.URL.Path, err)}
	}
	return validatedRequest{input: in}, nil
}

// checkResponse validates a response; statuses the spec does not list for
// the operation (all errors) are accepted by kin-openapi's default.
func (s *specValidator) checkResponse(req validatedRequest, status int, header http.Header, body []byte) []string {
	if req.input == nil {
		return nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: req.input,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                s.opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		r := req.input.Request
		return []string{fmt.Sprintf("%s %s: response %d: %v", r.Method, r.URL.Path, status, err)}
	}
	return nil
}
