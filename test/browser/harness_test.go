// Package browser tests the demo page and the dashboard in a real, headless
// Chromium driven by chromedp. The server stack (node, routers, web) runs in
// this process on an httptest.Server, wired exactly as main.go wires it.
//
// Run: GOTOOLCHAIN=go1.27.3 go test -race -count=1 ./test/browser/
//
// Needs Debian's chromium (apt-get install chromium fonts-liberation). Without
// it the tests skip, unless CI is set: then they fail. Screenshots of every
// page land in test/artifacts/.
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/routers"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/store"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
	"github.com/go-websocket/go-websocket/tools/ident"
	"github.com/go-websocket/go-websocket/web"
)

// stepTimeout bounds every browser step (a navigation, a wait for the page).
const stepTimeout = 15 * time.Second

var (
	browserOnce sync.Once
	browserCtx  context.Context
	browserErr  error
	stopBrowser = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser()
	os.Exit(code)
}

// needBrowser returns the context of the shared browser, starting it on first
// use. Without chromium the test skips, or fails when CI is set.
func needBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("chromium is not installed (apt-get install -y --no-install-recommends chromium fonts-liberation); " +
				"the browser tests skip outside CI and fail in CI (env CI set)")
		}
		t.Fatalf("CI is set but chromium is not on PATH: %v", err)
	}
	browserOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gows-chromium-")
		if err != nil {
			browserErr = err
			return
		}
		actx, acancel := chromedp.NewExecAllocator(context.Background(),
			chromedp.ExecPath(path),
			chromedp.Flag("headless", true),
			chromedp.Flag("disable-gpu", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("log-level", "3"),
			chromedp.NoFirstRun,
			chromedp.NoSandbox, // required as root
			chromedp.UserDataDir(dir),
			chromedp.WindowSize(1024, 768),
		)
		bctx, bcancel := chromedp.NewContext(actx)
		stopBrowser = func() {
			bcancel()
			acancel()
			// Chromium's children can write into the directory for a moment
			// after the browser stops.
			for i := 0; i < 50; i++ {
				if os.RemoveAll(dir) == nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		// Start the browser without a deadline: a timeout on the context of
		// the first Run would kill it.
		if err := chromedp.Do(bctx); err != nil {
			browserErr = fmt.Errorf("start chromium %s: %w", path, err)
			return
		}
		browserCtx = bctx
	})
	if browserErr != nil {
		t.Fatal(browserErr)
	}
	return browserCtx
}

// ---------- the server stack ----------

// stack is one node with the routers and the web pages on an httptest.Server.
type stack struct {
	t    *testing.T
	node *servers.Node
	srv  *httptest.Server
	url  string // http://127.0.0.1:PORT
	addr string // 127.0.0.1:PORT
	tok  string // API token, "" when the API is open
	api  *wstest.API
}

type stackOpts struct {
	token   string
	secret  []byte
	systems store.Systems

	dashboardToken string // security.dashboardToken
	noDemo         bool   // server.demoPage = false
	noDashboard    bool   // server.dashboard = false
	cluster        bool   // cluster.enabled = true (the dashboard's title)
}

func newStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	if o.secret == nil {
		o.secret = []byte("browser-test-secret-0123456789abcdef")
	}
	if o.systems == nil {
		f, err := store.OpenFile(filepath.Join(t.TempDir(), "systems.json"))
		if err != nil {
			t.Fatal(err)
		}
		o.systems = f
	}
	m := metrics.New()
	node := servers.NewNode(servers.Options{
		Hub: servers.HubConfig{PingInterval: 25 * time.Second, PongWait: 60 * time.Second,
			WriteTimeout: 10 * time.Second, QueueLength: 256, ReadLimit: 8192},
		MembershipEvents: true,
		Secret:           o.secret,
		Systems:          o.systems,
		Metrics:          m,
		Logger:           zap.NewNop(),
	})
	var tokens []string
	if o.token != "" {
		tokens = []string{o.token}
	}
	engine := routers.New(routers.Options{
		Node: node, Logger: zap.NewNop(), Metrics: m, MaxBodyBytes: 1 << 20, APITokens: tokens,
		// Wired as main.go wires it.
		Extra: func(e *gin.Engine, protect gin.HandlerFunc) {
			web.Register(e, web.Options{
				Protect: protect, Stats: node, APIOpen: len(tokens) == 0,
				DemoPage: !o.noDemo, Dashboard: !o.noDashboard, DashboardToken: o.dashboardToken, Cluster: o.cluster,
			})
		},
	})
	srv := httptest.NewServer(engine)
	s := &stack{t: t, node: node, srv: srv, url: srv.URL, addr: srv.Listener.Addr().String(), tok: o.token,
		api: &wstest.API{URL: srv.URL, Client: httpClient, Token: o.token}}
	node.SetHTTPAddr(s.addr)
	t.Cleanup(func() {
		node.Shutdown(time.Now().Add(2 * time.Second))
		srv.CloseClientConnections()
		srv.Close()
	})
	return s
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// call POSTs body to an API endpoint and returns the answer and its status.
func (s *stack) call(endpoint, systemID string, body any) (*wstest.Resp, int) {
	s.t.Helper()
	r := s.api.Call(s.t, endpoint, systemID, body)
	return r, r.Status
}

// ok calls an endpoint that must succeed and decodes its data into out.
func (s *stack) ok(endpoint, systemID string, body, out any) {
	s.t.Helper()
	data := s.api.OK(s.t, endpoint, systemID, body)
	if out != nil {
		wstest.Decode(s.t, data, out)
	}
}

func (s *stack) register(systemID string) {
	s.t.Helper()
	env, _ := s.call("register", "", map[string]string{"systemId": systemID})
	if env.Code != 0 && env.Code != define.CodeSystemExists {
		s.t.Fatalf("register %s: %d %s", systemID, env.Code, env.Msg)
	}
}

// dial opens a plain WebSocket client (not a browser); it is closed when
// the test ends.
func (s *stack) dial(systemID string) *wstest.Client {
	s.t.Helper()
	return wstest.MustDial(s.t, s.url, systemID, wstest.Options{})
}

// ---------- a fake cluster of in-process nodes ----------

// fakeCluster connects nodes of one process the way the cluster layer does
// (the same LocalUnicast and LocalBroadcast entry points), and reports dead
// as registered nodes that never answer.
type fakeCluster struct {
	nodes []*servers.Node
	dead  []string
}

type peerRemote struct {
	c    *fakeCluster
	self *servers.Node
}

func (c *fakeCluster) attach(n *servers.Node) {
	c.nodes = append(c.nodes, n)
	n.SetRemote(&peerRemote{c: c, self: n})
}

func (r *peerRemote) Unicast(_ context.Context, id ident.NodeID, op *servers.UnicastOp) (*servers.UnicastReply, error) {
	for _, n := range r.c.nodes {
		if n.ID() == id {
			return n.LocalUnicast(op), nil
		}
	}
	return nil, define.ErrClientOffline
}

func (r *peerRemote) Broadcast(_ context.Context, op *servers.BroadcastOp) ([]*servers.BroadcastReply, []string) {
	var out []*servers.BroadcastReply
	for _, n := range r.c.nodes {
		if n != r.self {
			out = append(out, n.LocalBroadcast(op))
		}
	}
	return out, append([]string(nil), r.c.dead...)
}

// ---------- browser tabs ----------

// tab is one page in its own browser context (own cookies and localStorage,
// like another visitor), with the page's errors recorded.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu       sync.Mutex
	problems []string
}

// openTab opens url in a new browser context. The tab closes when the test
// ends; any JavaScript exception, console error or CSP violation fails it.
func openTab(t *testing.T, name, url string) *tab {
	return openTabIn(t, name, url, chromedp.WithNewBrowserContext())
}

func openTabIn(t *testing.T, name, url string, opts ...chromedp.ContextOption) *tab {
	t.Helper()
	bctx := needBrowser(t)
	ctx, cancel := chromedp.NewContext(bctx, opts...)
	t.Cleanup(cancel)
	// Create the target without a deadline (see needBrowser).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	tb := &tab{t: t, name: name, ctx: ctx}
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		t.Fatalf("%s: listen: %v", name, err)
	}
	t.Cleanup(tb.checkProblems)
	tb.do(chromedp.Navigate(url))
	return tb
}

// navigate loads url in the tab (same browser context, same localStorage).
func (tb *tab) navigate(url string) { tb.do(chromedp.Navigate(url)) }

func (tb *tab) record(ev any) {
	var p string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		p = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			p += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type == "error" || e.Type == "assert" {
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			p = "console." + string(e.Type) + ": " + strings.Join(args, " ")
		}
	case *log.EventEntryAdded:
		// Network errors (such as the 401 a page gets without a token) are
		// expected answers; anything else at error level is not, in
		// particular a Content-Security-Policy violation.
		if e.Entry.Level == log.EntryLevelError && e.Entry.Source != log.EntrySourceNetwork {
			p = "log " + string(e.Entry.Source) + ": " + e.Entry.Text
		}
	}
	if p != "" {
		tb.mu.Lock()
		tb.problems = append(tb.problems, p)
		tb.mu.Unlock()
	}
}

func (tb *tab) checkProblems() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Errorf("%s: the page reported: %s", tb.name, p)
	}
}

// do runs steps with a deadline; on failure it saves a screenshot.
func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.fail("steps", err)
	}
}

// wait polls a JavaScript expression until it is truthy and returns its value.
func wait[T any](tb *tab, what, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout-time.Second)))
	if err != nil {
		tb.fail("waiting for "+what, err)
	}
	return v
}

// typeInto waits until the input is enabled, focuses it and types text like
// a person. (chromedp's SendKeys reads the node's attributes without a lock,
// which races with the page changing them, e.g. removing "disabled".)
func (tb *tab) typeInto(id, text string) {
	tb.t.Helper()
	wait[bool](tb, "#"+id+" enabled", fmt.Sprintf(`(() => { const e = document.getElementById(%s); return !!e && !e.disabled; })()`, js(id)))
	tb.do(chromedp.Focus(chromedp.ID(id)), chromedp.KeyEvent(text))
}

// eval evaluates a JavaScript expression once.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.fail("evaluating "+expr, err)
	}
	return v
}

func (tb *tab) fail(what string, err error) {
	tb.t.Helper()
	tb.screenshot("FAILED-" + tb.name)
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	tb.t.Fatalf("%s: %s: %v\n---- page text ----\n%s\n----", tb.name, what, err, body)
}

// screenshot saves the whole page as test/artifacts/<name>.png: the viewport
// is made as tall as the page for the shot (same width, so the same layout).
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	h, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`Math.max(document.documentElement.scrollHeight, window.innerHeight)`))
	if err != nil {
		tb.t.Logf("%s: screenshot: %v", tb.name, err)
		return
	}
	w, _ := chromedp.Run(ctx, chromedp.Evaluate[int64](`window.innerWidth`))
	var png []byte
	err = chromedp.Do(ctx,
		chromedp.EmulateViewport(w, h),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			var err error
			png, err = chromedp.CaptureScreenshot()(ctx, t)
			return err
		}),
		chromedp.ResetViewport())
	if err != nil {
		tb.t.Logf("%s: screenshot: %v", tb.name, err)
		return
	}
	dir := filepath.Join("..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Logf("screenshot dir: %v", err)
		return
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.t.Logf("screenshot: %v", err)
		return
	}
	tb.t.Logf("screenshot: test/artifacts/%s.png", name)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
