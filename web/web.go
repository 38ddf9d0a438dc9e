// Package web serves the pages a person opens in a browser: the demo chat at
// "/", the operator dashboard at "/dashboard", their static files, and the
// dashboard's data endpoint GET /api/websocket/stats. Everything is embedded
// in the binary: no CDN, no web fonts, no build step.
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-websocket/go-websocket/api"
	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers"
)

//go:embed pages static
var files embed.FS

// StatsSource is what the dashboard needs of the node: the stats of every
// node of the cluster that answered, and the ids of those that did not.
// *servers.Node implements it.
type StatsSource interface {
	ClusterStats(ctx context.Context) ([]*servers.Stats, []string)
}

// StatsPath is the dashboard's data endpoint.
const StatsPath = "/api/websocket/stats"

// statsTimeout bounds one stats request: a dead peer is reported as
// unreachable instead of holding the dashboard.
const statsTimeout = 3 * time.Second

// csp keeps the pages to their own origin: scripts, styles, fetch and the
// WebSocket. CSP3 browsers count ws: and wss: to the same host as 'self';
// older ones need the host spelled out, which connectSrc adds.
const csp = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'; connect-src 'self'"

// Options says what Register serves.
type Options struct {
	// Protect is the API token middleware.
	Protect gin.HandlerFunc
	// Stats answers the stats endpoint.
	Stats StatsSource
	// APIOpen: the HTTP API needs no token (no apiTokens configured).
	APIOpen bool
	// DemoPage serves the demo page at "/".
	DemoPage bool
	// Dashboard serves the dashboard at "/dashboard".
	Dashboard bool
	// DashboardToken, when set, is the dashboard's read-only password: the
	// page and the stats endpoint accept it as HTTP Basic credentials (any
	// user name), so the browser's own login dialog asks for it once and
	// sends it with the page's requests. It opens nothing else.
	DashboardToken string
	// Cluster: the node runs in cluster mode (the dashboard's title).
	Cluster bool
}

// basicRealm names the dashboard's protection space in the browser.
const basicRealm = `Basic realm="go-websocket dashboard", charset="UTF-8"`

// Register adds the pages, their static files and the stats endpoint to e.
// The stats endpoint always exists: it accepts the API token (Protect) and,
// with the dashboard on, the dashboard token. A page switched off is not
// routed (404).
//
// Wiring in main: Extra: func(e *gin.Engine, protect gin.HandlerFunc) { web.Register(e, web.Options{Protect: protect, ...}) }
func Register(e *gin.Engine, o Options) {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	registerClient(e, static)
	dashAccess := "open"
	switch {
	case o.DashboardToken != "":
		dashAccess = "basic"
	case !o.APIOpen:
		dashAccess = "closed"
	}
	overview := "Node overview"
	if o.Cluster {
		overview = "Cluster overview"
	}
	fill := strings.NewReplacer("{{API_OPEN}}", strconv.FormatBool(o.APIOpen),
		"{{DASHBOARD_ACCESS}}", dashAccess, "{{OVERVIEW}}", overview,
		"{{DEMO_PAGE}}", strconv.FormatBool(o.DemoPage), "{{DASHBOARD}}", strconv.FormatBool(o.Dashboard))
	if o.DemoPage {
		index := mustPage("pages/index.html", fill)
		e.GET("/", page(index))
		e.HEAD("/", page(index))
	}
	dashAuth := func(c *gin.Context) {}
	if o.Dashboard && o.DashboardToken != "" {
		dashAuth = basicAuth(o.DashboardToken)
	}
	if o.Dashboard {
		dash := mustPage("pages/dashboard.html", fill)
		e.GET("/dashboard", dashAuth, page(dash))
		e.HEAD("/dashboard", dashAuth, page(dash))
	}
	statsAuth := o.Protect
	if o.Dashboard && o.DashboardToken != "" {
		statsAuth = func(c *gin.Context) {
			if _, _, basic := c.Request.BasicAuth(); basic {
				dashAuth(c)
				return
			}
			o.Protect(c)
		}
	}
	e.GET(StatsPath, statsAuth, statsHandler(o.Stats))
	if !o.DemoPage && !o.Dashboard {
		return
	}
	e.GET("/static/*file", func(c *gin.Context) {
		name := strings.TrimPrefix(c.Param("file"), "/")
		if st, err := fs.Stat(static, name); err != nil || st.IsDir() {
			c.AbortWithStatusJSON(http.StatusNotFound, define.Response{Code: define.CodeInvalidRequest,
				Msg: "no such file: " + c.Request.URL.Path})
			return
		}
		securityHeaders(c)
		c.Header("Cache-Control", "no-cache")
		http.ServeFileFS(c.Writer, c.Request, static, name)
	})
}

// mustPage reads an embedded page and fills in the server's settings.
func mustPage(name string, fill *strings.Replacer) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return []byte(fill.Replace(string(b)))
}

// basicAuth accepts HTTP Basic credentials whose password is token (any
// user name, compared in constant time); otherwise it answers 401 with a
// challenge, so a browser shows its login dialog.
func basicAuth(token string) gin.HandlerFunc {
	want := sha256.Sum256([]byte(token))
	return func(c *gin.Context) {
		_, pass, ok := c.Request.BasicAuth()
		got := sha256.Sum256([]byte(pass))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Header("WWW-Authenticate", basicRealm)
			c.Header("Cache-Control", "no-store")
			c.AbortWithStatusJSON(http.StatusUnauthorized, define.Response{Code: define.CodeUnauthorized,
				Msg: "the dashboard needs its password (security.dashboardToken) as HTTP Basic credentials"})
			return
		}
	}
}

func page(body []byte) gin.HandlerFunc {
	return func(c *gin.Context) {
		securityHeaders(c)
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "text/html; charset=utf-8", body)
	}
}

func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	policy := csp
	if host := c.Request.Host; validHost(host) {
		policy += " ws://" + host + " wss://" + host
	}
	h.Set("Content-Security-Policy", policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// validHost accepts a host[:port] made of the characters a host name or an
// IP literal can hold, so a crafted Host header cannot add CSP directives.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.', r == '-', r == ':', r == '[', r == ']':
		default:
			return false
		}
	}
	return true
}

// Stats is the data of GET /api/websocket/stats.
type Stats struct {
	// Nodes that answered, this node first.
	Nodes []*servers.Stats `json:"nodes"`
	// Unreachable lists the ids of registered nodes that did not answer.
	Unreachable []string `json:"unreachable"`
	Totals      Totals   `json:"totals"`
	// Time is when the stats were taken (for rates computed by the page).
	Time time.Time `json:"time"`
}

// Totals sums the nodes that answered.
type Totals struct {
	Nodes              int            `json:"nodes"`
	Unreachable        int            `json:"unreachable"`
	Connections        int            `json:"connections"`
	Systems            map[string]int `json:"systems"`
	Groups             int            `json:"groups"`
	MessagesPushed     uint64         `json:"messagesPushed"`
	MessagesDropped    uint64         `json:"messagesDropped"`
	SlowConsumerCloses uint64         `json:"slowConsumerCloses"`
	RPCErrors          uint64         `json:"rpcErrors"`
}

// Collect asks src for the cluster's stats and sums them.
func Collect(ctx context.Context, src StatsSource) *Stats {
	nodes, unreachable := src.ClusterStats(ctx)
	out := &Stats{Nodes: make([]*servers.Stats, 0, len(nodes)), Unreachable: []string{}, Time: time.Now().UTC()}
	out.Totals.Systems = map[string]int{}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if n.Systems == nil {
			n.Systems = map[string]int{}
		}
		out.Nodes = append(out.Nodes, n)
		t := &out.Totals
		t.Connections += n.Connections
		t.Groups += n.Groups
		t.MessagesPushed += n.MessagesPushed
		t.MessagesDropped += n.MessagesDropped
		t.SlowConsumerCloses += n.SlowConsumerCloses
		t.RPCErrors += n.RPCErrors
		for s, c := range n.Systems {
			t.Systems[s] += c
		}
	}
	if len(out.Nodes) > 1 { // this node stays first; the others in a stable order
		rest := out.Nodes[1:]
		sort.Slice(rest, func(i, j int) bool {
			if rest[i].HTTPAddr != rest[j].HTTPAddr {
				return rest[i].HTTPAddr < rest[j].HTTPAddr
			}
			return rest[i].NodeID < rest[j].NodeID
		})
	}
	out.Unreachable = append(out.Unreachable, unreachable...)
	sort.Strings(out.Unreachable)
	out.Totals.Nodes = len(out.Nodes)
	out.Totals.Unreachable = len(out.Unreachable)
	return out
}

func statsHandler(src StatsSource) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), statsTimeout)
		defer cancel()
		c.Header("Cache-Control", "no-store")
		api.OK(c, Collect(ctx, src))
	}
}
