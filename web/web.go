// Package web serves the pages a person opens in a browser: the demo chat at
// "/", the operator dashboard at "/dashboard", their static files, and the
// dashboard's data endpoint GET /api/websocket/stats. Everything is embedded
// in the binary: no CDN, no web fonts, no build step.
package web

import (
	"bytes"
	"context"
	"embed"
	"io/fs"
	"net/http"
	"sort"
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

// Register adds the pages and the stats endpoint to e. protect is the API
// token middleware: the stats endpoint sits behind it, the pages do not
// (they hold no data; they ask for a token when the API needs one). apiOpen
// tells the demo page whether the HTTP API needs no token.
//
// Wiring in main: Extra: func(e *gin.Engine, protect gin.HandlerFunc) { web.Register(e, protect, node, len(cfg.Security.APITokens) == 0) }
func Register(e *gin.Engine, protect gin.HandlerFunc, src StatsSource, apiOpen bool) {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	open := "false"
	if apiOpen {
		open = "true"
	}
	index := mustPage("pages/index.html", open)
	dash := mustPage("pages/dashboard.html", open)

	e.GET("/", page(index))
	e.HEAD("/", page(index))
	e.GET("/dashboard", page(dash))
	e.HEAD("/dashboard", page(dash))
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
	e.GET(StatsPath, protect, statsHandler(src))
}

// mustPage reads an embedded page and fills in the server's settings.
func mustPage(name, apiOpen string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return bytes.ReplaceAll(b, []byte("{{API_OPEN}}"), []byte(apiOpen))
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
