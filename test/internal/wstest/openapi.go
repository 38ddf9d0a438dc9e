package wstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
)

// Spec is docs/openapi.yaml, loaded and validated once, with a router over
// its paths and a record of the answers validated against it.
type Spec struct {
	Doc    *openapi3.T
	router routers.Router

	mu      sync.Mutex
	checked map[string]map[int]bool // operationId: statuses validated
}

// LoadSpec returns the repository's OpenAPI document (loaded once).
var LoadSpec = sync.OnceValues(func() (*Spec, error) {
	root, err := nodeproc.RepoRoot()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "docs", "openapi.yaml"))
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	doc.Servers = nil // match any host: every node under test has its own port
	r, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &Spec{Doc: doc, router: r, checked: map[string]map[int]bool{}}, nil
})

// Checked reports whether an answer of operationId with status was
// validated.
func (s *Spec) Checked(operationID string, status int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checked[operationID][status]
}

// CheckSpec validates an answer against docs/openapi.yaml. The legacy paths
// (/api/<name>, /ws) are checked as the main ones they alias; paths and
// methods the document does not describe (the 404 and 405 probes) are not
// checked.
func CheckSpec(r *Resp) error {
	spec, err := LoadSpec()
	if err != nil {
		return err
	}
	path := r.Path
	if q := strings.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	switch {
	case path == LegacyWSPath:
		path = WSPath
	case strings.HasPrefix(path, LegacyPrefix) && !strings.HasPrefix(path, Prefix):
		path = Prefix + strings.TrimPrefix(path, LegacyPrefix)
	}
	req, err := http.NewRequest(r.Method, "http://127.0.0.1"+path, nil)
	if err != nil {
		return nil // a path made unparseable on purpose
	}
	route, params, err := spec.router.FindRoute(req)
	if err != nil {
		return nil
	}
	h := http.Header{}
	h.Set("Content-Type", r.ContentType)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.Status,
		Header:                 h,
		Body:                   io.NopCloser(bytes.NewReader(r.Body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s: does not match docs/openapi.yaml (%s): %v", r, route.Operation.OperationID, err)
	}
	spec.mu.Lock()
	id := route.Operation.OperationID
	if spec.checked[id] == nil {
		spec.checked[id] = map[int]bool{}
	}
	spec.checked[id][r.Status] = true
	spec.mu.Unlock()
	return nil
}
