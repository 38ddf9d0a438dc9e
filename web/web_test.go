package web

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-websocket/go-websocket/servers"
)

type fakeSource struct {
	nodes       []*servers.Stats
	unreachable []string
	calls       atomic.Int32
	deadline    atomic.Bool
}

func (f *fakeSource) ClusterStats(ctx context.Context) ([]*servers.Stats, []string) {
	f.calls.Add(1)
	_, ok := ctx.Deadline()
	f.deadline.Store(ok)
	return f.nodes, f.unreachable
}

func engine(src StatsSource, protect gin.HandlerFunc, apiOpen bool) *gin.Engine {
	return engineWith(Options{Protect: protect, Stats: src, APIOpen: apiOpen, DemoPage: true, Dashboard: true})
}

func engineWith(o Options) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	Register(e, o)
	return e
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

func TestStatsEnvelopeAndTotals(t *testing.T) {
	src := &fakeSource{
		nodes: []*servers.Stats{
			{NodeID: "self", HTTPAddr: "10.0.0.9:7800", Connections: 3, Systems: map[string]int{"a": 2, "b": 1},
				Groups: 2, MessagesPushed: 100, MessagesDropped: 1, SlowConsumerCloses: 1, RPCErrors: 2},
			{NodeID: "n3", HTTPAddr: "10.0.0.3:7800", Connections: 5, Systems: map[string]int{"a": 5},
				Groups: 1, MessagesPushed: 50, RPCErrors: 1},
			{NodeID: "n1", HTTPAddr: "10.0.0.1:7800", Systems: nil},
		},
		unreachable: []string{"zz", "dead"},
	}
	w := get(t, engine(src, func(*gin.Context) {}, true), StatsPath)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("HTTP %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	var env struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
		Data Stats  `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if env.Code != 0 || env.Msg != "success" {
		t.Errorf("envelope %d %q", env.Code, env.Msg)
	}
	d := env.Data
	var order []string
	for _, n := range d.Nodes {
		order = append(order, n.NodeID)
	}
	if strings.Join(order, ",") != "self,n1,n3" {
		t.Errorf("node order %v: this node first, then by address", order)
	}
	if d.Nodes[1].Systems == nil {
		t.Error("a node without systems must answer {} not null")
	}
	want := Totals{Nodes: 3, Unreachable: 2, Connections: 8, Systems: map[string]int{"a": 7, "b": 1}, Groups: 3,
		MessagesPushed: 150, MessagesDropped: 1, SlowConsumerCloses: 1, RPCErrors: 3}
	got := d.Totals
	if got.Nodes != want.Nodes || got.Unreachable != want.Unreachable || got.Connections != want.Connections ||
		got.Groups != want.Groups || got.MessagesPushed != want.MessagesPushed || got.MessagesDropped != want.MessagesDropped ||
		got.SlowConsumerCloses != want.SlowConsumerCloses || got.RPCErrors != want.RPCErrors ||
		len(got.Systems) != 2 || got.Systems["a"] != 7 || got.Systems["b"] != 1 {
		t.Errorf("totals %+v, want %+v", got, want)
	}
	if strings.Join(d.Unreachable, ",") != "dead,zz" {
		t.Errorf("unreachable %v, want sorted", d.Unreachable)
	}
	if time.Since(d.Time) > time.Minute {
		t.Errorf("time %v", d.Time)
	}
	if !src.deadline.Load() {
		t.Error("ClusterStats got a context without a deadline")
	}
}

func TestStatsEmptyListsAreArrays(t *testing.T) {
	src := &fakeSource{nodes: []*servers.Stats{{NodeID: "self"}}}
	w := get(t, engine(src, func(*gin.Context) {}, true), StatsPath)
	body := w.Body.String()
	for _, want := range []string{`"unreachable":[]`, `"systems":{}`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
}

func TestStatsBehindProtect(t *testing.T) {
	src := &fakeSource{nodes: []*servers.Stats{{NodeID: "self"}}}
	deny := func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"code": 10005, "msg": "no", "data": nil})
	}
	e := engine(src, deny, false)
	if w := get(t, e, StatsPath); w.Code != http.StatusUnauthorized {
		t.Errorf("stats through a refusing protect: HTTP %d", w.Code)
	}
	if src.calls.Load() != 0 {
		t.Error("the stats were collected although protect refused")
	}
	// The pages themselves stay public.
	for _, p := range []string{"/", "/dashboard", "/static/app.css", "/static/common.js", "/static/demo.js", "/static/dashboard.js"} {
		if w := get(t, e, p); w.Code != http.StatusOK {
			t.Errorf("GET %s: HTTP %d", p, w.Code)
		}
	}
}

func TestPages(t *testing.T) {
	for _, open := range []bool{true, false} {
		e := engine(&fakeSource{}, func(*gin.Context) {}, open)
		for _, p := range []string{"/", "/dashboard"} {
			w := get(t, e, p)
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("GET %s: HTTP %d %s", p, w.Code, w.Header().Get("Content-Type"))
			}
			body := w.Body.String()
			want := `<meta name="gows-api-open" content="false">`
			if open {
				want = `<meta name="gows-api-open" content="true">`
			}
			if !strings.Contains(body, want) {
				t.Errorf("GET %s (apiOpen %v) lacks %s", p, open, want)
			}
			if strings.Contains(body, "{{") {
				t.Errorf("GET %s has an unfilled placeholder", p)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") ||
				!strings.HasSuffix(csp, "connect-src 'self' ws://example.com wss://example.com") {
				t.Errorf("GET %s: CSP %q", p, csp)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: no nosniff", p)
			}
		}
	}
	e := engine(&fakeSource{}, func(*gin.Context) {}, true)
	for path, ctype := range map[string]string{"/static/app.css": "text/css", "/static/demo.js": "text/javascript"} {
		w := get(t, e, path)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) {
			t.Errorf("GET %s: HTTP %d %q", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	for _, p := range []string{"/static/", "/static/nope.js", "/static/../web.go", "/static/%2e%2e/web.go", "/static/index.html"} {
		w := get(t, e, p)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: HTTP %d, want 404", p, w.Code)
			continue
		}
		var env struct {
			Code int `json:"code"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Code == 0 {
			t.Errorf("GET %s: not a JSON error envelope: %s", p, w.Body)
		}
	}
}

// The pages load nothing from elsewhere (no CDN, no web fonts) and never put
// received text into the DOM as HTML.
func TestCSPIgnoresACraftedHost(t *testing.T) {
	e := engine(&fakeSource{}, func(*gin.Context) {}, true)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Host = "evil.example; script-src *"
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	if csp := w.Header().Get("Content-Security-Policy"); strings.Contains(csp, "evil") || !strings.HasSuffix(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestEmbeddedFilesAreSelfContained(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		s := string(b)
		for _, m := range url.FindAllString(s, -1) {
			if strings.Contains(m, "www.w3.org") { // the SVG namespace, not a fetch
				continue
			}
			t.Errorf("%s refers to %s: the pages must not load anything from elsewhere", path, m)
		}
		if strings.HasSuffix(path, ".js") {
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
				if strings.Contains(s, bad) {
					t.Errorf("%s uses %s: render received data with textContent", path, bad)
				}
			}
		}
		if strings.HasSuffix(path, ".html") && (strings.Contains(s, " style=") || strings.Contains(s, "<script>")) {
			t.Errorf("%s has inline style or script, which the Content-Security-Policy blocks", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Each page can be switched off: it is then not routed (404), and with both
// off neither are their static files. The stats endpoint stays (it is API).
func TestPagesSwitchOff(t *testing.T) {
	allow := func(*gin.Context) {}
	for _, c := range []struct {
		demo, dash bool
		ok, gone   []string
	}{
		{false, true, []string{"/dashboard", "/static/app.css", StatsPath}, []string{"/"}},
		{true, false, []string{"/", "/static/demo.js", StatsPath}, []string{"/dashboard"}},
		{false, false, []string{StatsPath}, []string{"/", "/dashboard", "/static/app.css", "/static/dashboard.js"}},
	} {
		e := engineWith(Options{Protect: allow, Stats: &fakeSource{}, APIOpen: true, DemoPage: c.demo, Dashboard: c.dash})
		for _, p := range c.ok {
			if w := get(t, e, p); w.Code != http.StatusOK {
				t.Errorf("demo %v dashboard %v: GET %s: HTTP %d, want 200", c.demo, c.dash, p, w.Code)
			}
		}
		for _, p := range c.gone {
			if w := get(t, e, p); w.Code != http.StatusNotFound {
				t.Errorf("demo %v dashboard %v: GET %s: HTTP %d, want 404", c.demo, c.dash, p, w.Code)
			}
		}
	}
}

// The dashboard token is HTTP Basic: the page and its data need it (a
// challenge makes the browser ask once), the API token still reads the
// stats, and a wrong password is refused.
func TestDashboardToken(t *testing.T) {
	const dashTok, apiTok = "dash-s3cret", "api-s3cret"
	src := &fakeSource{nodes: []*servers.Stats{{NodeID: "self"}}}
	protect := func(c *gin.Context) {
		if c.GetHeader("Authorization") != "Bearer "+apiTok {
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"code": 10005, "msg": "no", "data": nil})
		}
	}
	e := engineWith(Options{Protect: protect, Stats: src, DemoPage: true, Dashboard: true, DashboardToken: dashTok})
	req := func(path, user, pass, bearer string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if user != "" || pass != "" {
			r.SetBasicAuth(user, pass)
		}
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		return w
	}
	for _, c := range []struct {
		path, user, pass, bearer string
		status                   int
		challenge                bool
	}{
		{"/dashboard", "", "", "", 401, true},
		{"/dashboard", "ops", "wrong", "", 401, true},
		{"/dashboard", "ops", apiTok, "", 401, true},
		{"/dashboard", "ops", dashTok, "", 200, false},
		{"/dashboard", "", dashTok, "", 200, false},
		{StatsPath, "", "", "", 401, false},
		{StatsPath, "ops", "wrong", "", 401, true},
		{StatsPath, "ops", dashTok, "", 200, false},
		{StatsPath, "", "", apiTok, 200, false},
		{StatsPath, "", "", dashTok, 401, false},
		{"/", "", "", "", 200, false},
	} {
		w := req(c.path, c.user, c.pass, c.bearer)
		if w.Code != c.status {
			t.Errorf("GET %s user %q pass %q bearer %q: HTTP %d, want %d", c.path, c.user, c.pass, c.bearer, w.Code, c.status)
		}
		if got := strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic "); got != c.challenge {
			t.Errorf("GET %s user %q pass %q: Basic challenge %v, want %v", c.path, c.user, c.pass, got, c.challenge)
		}
	}
	if w := req("/dashboard", "ops", dashTok, ""); !strings.Contains(w.Body.String(), `content="basic"`) {
		t.Error("the dashboard does not know it is behind the dashboard token")
	}
}

// The dashboard's title: a standalone node is a node, not a cluster.
func TestDashboardTitle(t *testing.T) {
	for cluster, want := range map[bool]string{false: "Node overview", true: "Cluster overview"} {
		e := engineWith(Options{Protect: func(*gin.Context) {}, Stats: &fakeSource{}, APIOpen: true, Dashboard: true, Cluster: cluster})
		body := get(t, e, "/dashboard").Body.String()
		if !strings.Contains(body, `<h1 id="overview">`+want+`</h1>`) {
			t.Errorf("cluster %v: the dashboard does not say %q", cluster, want)
		}
	}
}

// Nothing served to a browser registers a system or holds an API token.
func TestPagesNeverRegisterNorHoldTokens(t *testing.T) {
	for _, name := range []string{"static/demo.js", "static/dashboard.js", "static/common.js", "pages/index.html", "pages/dashboard.html"} {
		b, err := files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Contains(s, "'register'") || strings.Contains(s, `"register"`) {
			t.Errorf("%s calls register", name)
		}
		if strings.Contains(s, "headers['Authorization']") || strings.Contains(s, `type="password"`) {
			t.Errorf("%s sends or asks for a token", name)
		}
	}
}
