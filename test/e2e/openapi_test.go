package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// Every endpoint of docs/openapi.yaml answers, success and error, as the
// document says; the document is served, as JSON, at openapi.json.
func TestOpenAPIEveryEndpoint(t *testing.T) {
	t.Parallel()
	spec, err := wstest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t)
	n := startNode(t, nil)
	n.registerHook(t, "oas", r, "connect")
	a, b := n.dial(t, "oas"), n.dial(t, "oas")
	n.ok(t, "bind_to_group", "oas", map[string]any{"clientId": a.id, "groupName": "g"})
	n.ok(t, "bind_to_user", "oas", map[string]any{"clientId": b.id, "userId": "ub"})
	calls := []struct {
		name string
		body any
		code int
	}{
		{"update_system", map[string]any{"webhookEvents": []string{"connect", "join"}}, 0},
		{"update_system", map[string]any{"rotateSecret": true}, 0},
		{"update_system", map[string]any{"webhookUrl": "gopher://x"}, 10001},
		{"get_system", nil, 0},
		{"send_to_client", map[string]any{"clientId": a.id, "data": map[string]any{"k": 1}}, 0},
		{"send_to_client", map[string]any{"clientId": "gone"}, 10006},
		{"send_to_clients", map[string]any{"clientIds": []string{a.id, "gone"}}, 0},
		{"send_to_clients", map[string]any{"clientIds": []string{}}, 10001},
		{"unbind_from_group", map[string]any{"clientId": a.id, "groupName": "g"}, 0},
		{"bind_to_group", map[string]any{"clientId": a.id, "groupName": "g", "userId": "ua"}, 0},
		{"bind_to_group", map[string]any{"clientId": a.id}, 10001},
		{"send_to_group", map[string]any{"groupName": "g", "data": "x"}, 0},
		{"send_to_system", nil, 0},
		{"get_online_list", nil, 0},
		{"get_online_list", map[string]any{"groupName": "g"}, 0},
		{"is_online", map[string]any{"clientId": a.id}, 0},
		{"is_online", map[string]any{"clientId": "x"}, 0},
		{"send_to_user", map[string]any{"userId": "ub", "data": 1}, 0},
		{"send_to_user", map[string]any{"userId": ""}, 10001},
		{"get_user_clients", map[string]any{"userId": "ub"}, 0},
		{"is_user_online", map[string]any{"userId": "ub"}, 0},
		{"batch", map[string]any{"ops": []map[string]any{{"op": "send_to_client", "clientId": a.id}, {"op": "close_client", "clientId": "gone"}}}, 0},
		{"batch", map[string]any{"ops": []map[string]any{{"op": "nope"}}}, 10001},
		{"close_client", map[string]any{"clientId": b.id}, 0},
		{"close_client", map[string]any{"clientId": b.id}, 10006},
		{"bind_to_user", map[string]any{"clientId": a.id, "userId": "ua"}, 0},
	}
	for _, c := range calls {
		resp := n.post(t, c.name, "oas", c.body)
		if resp.Code != c.code {
			t.Errorf("%s: code %d, want %d", resp, resp.Code, c.code)
		}
	}
	n.ok(t, "register", "", map[string]any{"systemId": "oas2"})
	n.fail(t, "register", "", map[string]any{"systemId": "oas2"}, 10004)
	n.fail(t, "get_system", "", nil, 10002)
	for _, p := range []string{"/healthz", "/readyz", mainWSPath} {
		if _, err := n.do(http.MethodGet, p, nil, nil); err != nil && p != mainWSPath {
			t.Error(err)
		}
	}

	// The served document is the YAML file, as JSON.
	resp, err := n.hc.Get(n.url + mainPrefix + "openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != jsonContentType {
		t.Fatalf("openapi.json: HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	fromJSON, err := openapi3.NewLoader().LoadFromData(served)
	if err != nil {
		t.Fatalf("served openapi.json: %v", err)
	}
	a1, _ := json.Marshal(fromJSON)
	raw, _ := os.ReadFile(filepath.Join(repoRoot, "docs", "openapi.yaml"))
	fromYAML, _ := openapi3.NewLoader().LoadFromData(raw)
	a2, _ := json.Marshal(fromYAML)
	if !bytes.Equal(a1, a2) {
		t.Fatal("openapi.json differs from docs/openapi.yaml")
	}

	// Every POST operation was seen answering 200 and validated.
	var missing []string
	for path, item := range spec.Doc.Paths.Map() {
		if op := item.Post; op != nil && !spec.Checked(op.OperationID, 200) {
			missing = append(missing, path)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("operations never validated with a 200: %v", missing)
	}
}
