package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The real binary wires server.demoPage, server.dashboard and
// security.dashboardToken: pages switched off answer 404; the dashboard
// token opens the dashboard (HTTP Basic) and nothing else.
func TestPagesSwitchesAndDashboardToken(t *testing.T) {
	t.Parallel()
	get := func(n *node, path, user, pass string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, n.url+path, nil)
		if pass != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := n.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	off := startNode(t, map[string]string{"GOWS_SERVER_DEMOPAGE": "false", "GOWS_SERVER_DASHBOARD": "false"})
	for _, p := range []string{"/", "/dashboard", "/static/demo.js"} {
		if code, body, _ := get(off, p, "", ""); code != http.StatusNotFound || !strings.Contains(body, `"code":10001`) {
			t.Errorf("pages off: GET %s: HTTP %d %.80s, want a JSON 404", p, code, body)
		}
	}

	on := startNode(t, map[string]string{"GOWS_SECURITY_APITOKENS": "api-token-1", "GOWS_SECURITY_DASHBOARDTOKEN": "dash-token-1"})
	if code, _, h := get(on, "/dashboard", "", ""); code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("dashboard without credentials: HTTP %d, challenge %q; want 401 and a Basic challenge", code, h.Get("WWW-Authenticate"))
	}
	if code, body, _ := get(on, "/dashboard", "ops", "dash-token-1"); code != http.StatusOK || !strings.Contains(body, "Node overview") {
		t.Errorf("dashboard with its token: HTTP %d, want 200 and Node overview", code)
	}
	if code, body, _ := get(on, "/api/websocket/stats", "ops", "dash-token-1"); code != http.StatusOK || !strings.Contains(body, `"code":0`) {
		t.Errorf("stats with the dashboard token: HTTP %d %.100s", code, body)
	}
	if code, _, _ := get(on, "/api/websocket/stats", "ops", "api-token-1"); code != http.StatusUnauthorized {
		t.Errorf("stats with the API token as the Basic password: HTTP %d, want 401", code)
	}
	if code, body, _ := get(on, "/", "", ""); code != http.StatusOK || strings.Contains(body, `type="password"`) {
		t.Errorf("demo page: HTTP %d, or it asks for a token", code)
	}
}
