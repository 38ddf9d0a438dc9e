package security

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// validBody is a well-formed body for ep, so that a refusal can only be
// about the credentials.
func validBody(ep, clientID, systemID string) any {
	switch ep {
	case "register":
		return map[string]any{"systemId": systemID}
	case "send_to_client":
		return map[string]any{"clientId": clientID, "data": "sneaky"}
	case "send_to_clients":
		return map[string]any{"clientIds": []string{clientID}, "data": "sneaky"}
	case "bind_to_group", "unbind_from_group":
		return map[string]any{"clientId": clientID, "groupName": "g"}
	case "send_to_group":
		return map[string]any{"groupName": "g", "data": "sneaky"}
	case "send_to_system":
		return map[string]any{"data": "sneaky"}
	case "get_online_list":
		return map[string]any{}
	default: // is_online, close_client
		return map[string]any{"clientId": clientID}
	}
}

// SPEC 6 / README: with apiTokens set, every API call (register included, on
// both path sets) needs "Authorization: Bearer <one of the tokens>", else
// 10005/401 with a JSON envelope; a refused call has no effect; both tokens
// work (rotation); /healthz and the WebSocket endpoint are not affected.
func TestAPITokenRequired(t *testing.T) {
	t.Parallel()
	tokA, tokB := "tokA-"+randHex(12), "tokB-"+randHex(12)
	n := startNode(t, env{kAPITokens: tokA + ", " + tokB}) // spaces are trimmed
	n.register(t, "s1")
	c := n.dial(t, "s1") // no Authorization needed to connect
	n.ok(t, "bind_to_group", "s1", map[string]string{"clientId": c.ID, "groupName": "g"})
	if p := c.NextFrame(t, 5*time.Second); p.Code != 1001 {
		t.Fatalf("want the 1001 join event first, got code %d", p.Code)
	}

	bad := map[string]string{
		"no Authorization":        "",
		"wrong token":             "Bearer wrong-" + randHex(8),
		"Bearer missing":          tokA,
		"Bearer alone":            "Bearer",
		"Bearer and a space":      "Bearer ",
		"both tokens at once":     "Bearer " + tokA + "," + tokB,
		"prefix of a token":       "Bearer " + tokA[:len(tokA)-1],
		"token plus a suffix":     "Bearer " + tokA + "0",
		"token in upper case":     "Bearer " + strings.ToUpper(tokA),
		"Basic scheme":            "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+tokA)),
		"Basic with the token":    "Basic " + base64.StdEncoding.EncodeToString([]byte(tokA)),
		"token only in the query": "",
	}
	calls := 0
	for _, prefix := range prefixes {
		for _, ep := range endpoints {
			for what, auth := range bad {
				h := http.Header{"Content-Type": {"application/json"}, "systemId": {"s1"}}
				if auth != "" {
					h["Authorization"] = []string{auth}
				}
				path := prefix + ep
				if what == "token only in the query" {
					path += "?token=" + tokA + "&access_token=" + tokA
				}
				r := n.raw(t, path, h, validBody(ep, c.ID, "sneaky"))
				wantCode(t, r, 10005, what)
				calls++
			}
		}
	}
	t.Logf("%d unauthenticated calls refused", calls)

	// Nothing the refused calls asked for happened: the client was not
	// closed, unbound or pushed to, and "sneaky" was not registered.
	n.ok(t, "register", "", map[string]string{"systemId": "sneaky"})
	if !n.isOnline(t, "s1", c.ID) {
		t.Fatalf("a refused close_client closed the client")
	}
	if got := n.onlineList(t, "s1", "g"); len(got) != 1 || got[0] != c.ID {
		t.Errorf("a refused unbind_from_group changed group g: %v", got)
	}
	mid := n.sendTo(t, "s1", c.ID, `"marker"`)
	c.ExpectID(t, mid, "after refused calls (a refused push must not arrive)")

	// Rotation: both tokens are accepted on both path sets.
	for _, tok := range []string{tokA, tokB} {
		for _, prefix := range prefixes {
			h := http.Header{"Content-Type": {"application/json"}, "systemId": {"s1"}, "Authorization": {"Bearer " + tok}}
			r := n.raw(t, prefix+"send_to_client", h, map[string]any{"clientId": c.ID, "data": 1})
			if r.Code != 0 {
				t.Errorf("token %.4s… on %s: %s", tok, prefix, r)
				continue
			}
			var d struct {
				MessageID string `json:"messageId"`
			}
			decode(t, r.Data, &d)
			c.ExpectID(t, d.MessageID, "push with a valid token")
			sys := "rot-" + tok[:4] + "-" + strings.Trim(prefix, "/")
			sys = strings.ReplaceAll(sys, "/", "-")
			r = n.raw(t, prefix+"register", http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + tok}},
				map[string]string{"systemId": sys})
			wantCode(t, r, 0, "register with a valid token")
		}
	}

	// /healthz stays open.
	resp, err := n.HC.Get(n.URL + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /healthz without a token: HTTP %d, want 200", resp.StatusCode)
	}
}

// SPEC 3/6, README: with connectSecret, ws needs ?token=<JWT HS256> whose
// systemId claim matches, with exp (nbf honoured, 30 s leeway); anything
// else gets the 10005 frame and close 4401. The token's userId is attached
// to the connection and shows up in membership events.
func TestConnectToken(t *testing.T) {
	t.Parallel()
	secret := "connect-secret-" + randHex(16)
	n := startNode(t, env{kConnectSecret: secret, kAPITokens: "api-" + randHex(8)})
	n.register(t, "ct", "ct-other")
	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"systemId": "ct", "userId": "u", "exp": exp}
		for i := 0; i+1 < len(kv); i += 2 {
			k := kv[i].(string)
			if kv[i+1] == nil {
				delete(c, k)
			} else {
				c[k] = kv[i+1]
			}
		}
		return c
	}
	hs256 := func(c jwt.MapClaims) string { return signToken(t, secret, jwt.SigningMethodHS256, c) }
	ptr := func(s string) *string { return &s }

	// Valid tokens connect, on both paths.
	good := hs256(claims("nbf", now.Add(-10*time.Second).Unix()))
	for _, path := range []string{mainWSPath, legacyWSPath} {
		c := n.dialOpts(t, "ct", dialOpt{path: path, token: ptr(good)})
		c.Close()
	}
	// Within the documented 30 s leeway (clock skew).
	n.dialOpts(t, "ct", dialOpt{token: ptr(hs256(claims("exp", now.Add(-5*time.Second).Unix())))}).Close()
	n.dialOpts(t, "ct", dialOpt{token: ptr(hs256(claims("nbf", now.Add(10*time.Second).Unix())))}).Close()

	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"systemId":"ct","userId":"admin","exp":`+jsonNum(exp)+`}`)) + "." + parts[2]
	bad := []struct {
		name, system, token string
	}{
		{"missing token", "ct", ""},
		{"garbage", "ct", "not.a.jwt"},
		{"wrong signature", "ct", signToken(t, "not-the-"+secret, jwt.SigningMethodHS256, claims())},
		{"tampered payload", "ct", tampered},
		{"expired an hour ago", "ct", hs256(claims("exp", now.Add(-time.Hour).Unix()))},
		{"expired beyond the leeway", "ct", hs256(claims("exp", now.Add(-2*time.Minute).Unix()))},
		{"nbf in the future", "ct", hs256(claims("nbf", now.Add(time.Hour).Unix(), "exp", now.Add(2*time.Hour).Unix()))},
		{"no exp", "ct", hs256(claims("exp", nil))},
		{"other systemId", "ct", hs256(claims("systemId", "ct-other"))},
		{"token of ct used for ct-other", "ct-other", good},
		{"no systemId claim", "ct", hs256(claims("systemId", nil))},
		{"alg none", "ct", signToken(t, "", jwt.SigningMethodNone, claims())},
		{"alg none, signature kept", "ct", strings.Join([]string{
			base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)), parts[1], parts[2]}, ".")},
		{"HS512 with the right secret", "ct", signToken(t, secret, jwt.SigningMethodHS512, claims())},
		{"HS384 with the right secret", "ct", signToken(t, secret, jwt.SigningMethodHS384, claims())},
		{"very long token", "ct", strings.Repeat("a", 10000)},
	}
	before := n.metric(t, "gows_connects_refused_total", map[string]string{"reason": "token"})
	for _, b := range bad {
		n.refused(t, b.system, dialOpt{token: ptr(b.token)}, 10005, 4401, b.name)
	}
	n.refused(t, "ct", dialOpt{path: legacyWSPath, token: ptr("")}, 10005, 4401, "missing token on /ws")
	if d := n.metric(t, "gows_connects_refused_total", map[string]string{"reason": "token"}) - before; int(d) != len(bad)+1 {
		t.Errorf("gows_connects_refused_total{reason=\"token\"} moved by %v, want %d", d, len(bad)+1)
	}
	if got := n.onlineList(t, "ct", ""); len(got) != 0 {
		t.Errorf("refused connects are online: %v", got)
	}

	// The token's userId reaches membership events (bind without userId).
	alice := n.dialOpts(t, "ct", dialOpt{userID: "alice-from-token"})
	bob := n.dialOpts(t, "ct", dialOpt{userID: "bob-from-token"})
	event := func(c *wstest.Client, code int, who, wantUser, what string) {
		t.Helper()
		p := c.NextFrame(t, 5*time.Second)
		var ev wstest.MemberEvent
		if p.Code != code || json.Unmarshal(p.Data, &ev) != nil || ev.ClientID != who || ev.GroupName != "room" {
			t.Errorf("%s: got code %d data %s, want a %d event for %s in room", what, p.Code, p.Data, code, who)
			return
		}
		if ev.UserID != wantUser {
			t.Errorf("%s: event data.userId %q, want %q (the connect token's userId)", what, ev.UserID, wantUser)
		}
	}
	n.ok(t, "bind_to_group", "ct", map[string]string{"clientId": alice.ID, "groupName": "room"})
	event(alice, 1001, alice.ID, "alice-from-token", "alice's own join")
	n.ok(t, "bind_to_group", "ct", map[string]string{"clientId": bob.ID, "groupName": "room"})
	event(alice, 1001, bob.ID, "bob-from-token", "bob's join seen by alice")
	event(bob, 1001, bob.ID, "bob-from-token", "bob's own join")
	n.ok(t, "unbind_from_group", "ct", map[string]string{"clientId": alice.ID, "groupName": "room"})
	event(bob, 1002, alice.ID, "alice-from-token", "alice's leave seen by bob")
}

func jsonNum(v int64) string { b, _ := json.Marshal(v); return string(b) }

// SPEC 3/6, README: allowedOrigins admits exact origins and *.domain
// subdomains; any other browser origin gets the 10012 frame and close 4003;
// a request without Origin (not a browser) is not restricted.
func TestAllowedOrigins(t *testing.T) {
	t.Parallel()
	n := startNode(t, env{kOrigins: "https://app.example.com,https://*.example.com"})
	n.register(t, "or")
	allowed := []string{"https://app.example.com", "https://chat.example.com", "https://a.b.example.com", ""}
	for _, o := range allowed {
		n.dialOpts(t, "or", dialOpt{origin: o}) // stays open
	}
	refused := []string{
		"https://evil.com", "http://app.example.com", "https://example.com", "https://app.example.com.evil.com",
		"https://evilexample.com", "https://example.com.evil.com", "null", "https://app.example.com:8443",
		"http://chat.example.com", "https://app.example.co", "file://", "not a url",
	}
	before := n.metric(t, "gows_connects_refused_total", map[string]string{"reason": "origin"})
	for _, o := range refused {
		n.refused(t, "or", dialOpt{origin: o}, 10012, 4003, "Origin "+o)
	}
	n.refused(t, "or", dialOpt{origin: "https://evil.com", path: legacyWSPath}, 10012, 4003, "Origin https://evil.com on /ws")
	if d := n.metric(t, "gows_connects_refused_total", map[string]string{"reason": "origin"}) - before; int(d) != len(refused)+1 {
		t.Errorf("gows_connects_refused_total{reason=\"origin\"} moved by %v, want %d", d, len(refused)+1)
	}
	if got := n.onlineList(t, "or", ""); len(got) != len(allowed) {
		t.Errorf("%d clients online, want the %d allowed ones", len(got), len(allowed))
	}
}

var warnLine = regexp.MustCompile(`(?m)^.*\bWARN\b.*$`)

// SPEC 6: start-up warns loudly when the API (and the WebSocket) is open to
// anyone, and stops warning about what has been secured.
func TestStartupWarnings(t *testing.T) {
	t.Parallel()
	apiOpen := func(l string) bool { return strings.Contains(l, "API") && strings.Contains(l, "open") }
	wsOpen := func(l string) bool {
		return strings.Contains(l, "WebSocket") || strings.Contains(strings.ToLower(l), "connectsecret")
	}
	find := func(log string, pred func(string) bool) []string {
		var out []string
		for _, l := range warnLine.FindAllString(log, -1) {
			if pred(l) {
				out = append(out, l)
			}
		}
		return out
	}

	t.Run("default config", func(t *testing.T) {
		t.Parallel()
		n := startNode(t, nil)
		log := n.Output()
		if len(find(log, apiOpen)) == 0 {
			t.Errorf("no WARN line saying the API is open in the start-up log:\n%s", log)
		}
		if len(find(log, wsOpen)) == 0 {
			t.Errorf("no WARN line saying anyone may open a WebSocket in the start-up log:\n%s", log)
		}
	})
	t.Run("api tokens only", func(t *testing.T) {
		t.Parallel()
		n := startNode(t, env{kAPITokens: "t-" + randHex(8)})
		log := n.Output()
		if l := find(log, apiOpen); len(l) > 0 {
			t.Errorf("API tokens are set, but start-up still warns the API is open: %q", l)
		}
		if len(find(log, wsOpen)) == 0 {
			t.Errorf("connectSecret is not set: want a WARN about open WebSockets:\n%s", log)
		}
	})
	t.Run("everything secured", func(t *testing.T) {
		t.Parallel()
		n := startNode(t, env{kAPITokens: "t-" + randHex(8), kConnectSecret: "s-" + randHex(8), kOrigins: "https://app.example.com"})
		log := n.Output()
		if l := find(log, func(l string) bool {
			return apiOpen(l) || wsOpen(l) || strings.Contains(l, "anyone") || strings.Contains(l, "origin")
		}); len(l) > 0 {
			t.Errorf("everything is secured, but start-up still warns: %q", l)
		}
		if !strings.Contains(log, "go-websocket started") {
			t.Errorf("no start-up line in the log:\n%s", log)
		}
	})
}

// README: the dashboard's stats endpoint and the profiler (server.pprof,
// "behind the API token when one is set") need the API token like the API;
// the profiler is off by default.
func TestProtectedExtras(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, n *node, path, auth string) (int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, n.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := n.HC.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, resp.Header, b
	}
	t.Run("profiler off by default", func(t *testing.T) {
		t.Parallel()
		n := startNode(t, nil)
		for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=2"} {
			if st, _, b := get(t, n, p, ""); st != http.StatusNotFound {
				t.Errorf("GET %s with the default config: HTTP %d %.200s, want 404", p, st, b)
			}
		}
	})
	t.Run("stats and profiler need the token", func(t *testing.T) {
		t.Parallel()
		tok := "tokA-" + randHex(12)
		secret := "connect-" + randHex(16)
		n := startNode(t, env{kAPITokens: tok, kConnectSecret: secret, "GOWS_SERVER_PPROF": "true"})
		for _, p := range []string{"/api/websocket/stats", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=2"} {
			for _, auth := range []string{"", "Bearer wrong-" + randHex(4), tok} {
				st, h, b := get(t, n, p, auth)
				r := &wstest.Resp{Method: "GET", Path: p, Status: st, Header: h, Body: b}
				if err := wstest.CheckEnvelope(r); err != nil {
					t.Errorf("Authorization %q: %v", auth, err)
				}
				wantCode(t, r, 10005, "GET "+p+" without a valid token")
			}
			st, _, b := get(t, n, p, "Bearer "+tok)
			if st != http.StatusOK {
				t.Errorf("GET %s with the token: HTTP %d %.200s, want 200", p, st, b)
			}
			for name, s := range map[string]string{"API token": tok, "connect secret": secret} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("GET %s shows the %s", p, name)
				}
			}
		}
	})
}
