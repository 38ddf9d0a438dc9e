package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/routers"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/store"
	"github.com/go-websocket/go-websocket/web"
)

// sessionNode is a node with sessions on (so gows.js can resume) behind a
// TCP proxy that can cut every connection, as a network drop would.
type sessionNode struct {
	url   string // the node, http://
	proxy string // the proxy, host:port

	mu    sync.Mutex
	conns []net.Conn
}

func newSessionNode(t *testing.T) *sessionNode {
	t.Helper()
	sys, err := store.OpenFile(filepath.Join(t.TempDir(), "systems.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	node := servers.NewNode(servers.Options{
		Hub: servers.HubConfig{PingInterval: 25 * time.Second, PongWait: 60 * time.Second,
			WriteTimeout: 10 * time.Second, QueueLength: 256, ReadLimit: 8192, SessionTTL: 30 * time.Second},
		MembershipEvents: true, Secret: []byte("browser-test-secret-0123456789abcdef"),
		Systems: sys, Metrics: m, Logger: zap.NewNop(),
	})
	engine := routers.New(routers.Options{Node: node, Logger: zap.NewNop(), Metrics: m, MaxBodyBytes: 1 << 20,
		Extra: func(e *gin.Engine, protect gin.HandlerFunc) {
			web.Register(e, web.Options{Protect: protect, Stats: node, APIOpen: true, DemoPage: true})
		}})
	srv := httptest.NewServer(engine)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sessionNode{url: srv.URL, proxy: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				c.Close()
				continue
			}
			s.mu.Lock()
			s.conns = append(s.conns, c, u)
			s.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(u, c); u.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.cut()
		wg.Wait()
		node.Shutdown(time.Now().Add(2 * time.Second))
		srv.CloseClientConnections()
		srv.Close()
	})
	return s
}

func (s *sessionNode) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *sessionNode) post(t *testing.T, endpoint, systemID string, body any) json.RawMessage {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/api/websocket/"+endpoint, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if systemID != "" {
		req.Header.Set("systemId", systemID)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Code int             `json:"code"`
		Msg  string          `json:"msg"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Code != 0 {
		t.Fatalf("%s: %d %s %v", endpoint, env.Code, env.Msg, err)
	}
	return env.Data
}

// gowsPage is a page of another origin that loads gows.js from the node,
// as a module or as a plain script, and records the client's events in
// window.log.
const gowsPage = `<!doctype html><html><head><meta charset="utf-8"><title>gows.js</title></head><body>
<pre id="out"></pre>
%s
</body></html>`

const pageScript = `
window.log = [];
function start(GowsClient) {
  const c = new GowsClient({ url: "ws://%s", systemId: "%s", initialDelay: 100, maxDelay: 1000 });
  for (const ev of ["state", "welcome", "message", "join", "leave", "close", "reconnecting"]) {
    c.on(ev, (x) => { window.log.push({ ev, x }); document.getElementById("out").textContent += ev + " " + JSON.stringify(x) + "\n"; });
  }
  window.client = c;
  c.connect();
}
`

func TestGowsJSBrowser(t *testing.T) {
	s := newSessionNode(t)
	s.post(t, "register", "", map[string]string{"systemId": "gjsb"})
	pages := map[string]string{
		"/module.html": `<script type="module">` + fmt.Sprintf(pageScript, s.proxy, "gjsb") +
			`import { GowsClient } from "` + s.url + `/gows.mjs"; start(GowsClient);</script>`,
		"/plain.html": `<script src="` + s.url + `/gows.js"></script><script>` + fmt.Sprintf(pageScript, s.proxy, "gjsb") +
			`start(window.gows.GowsClient);</script>`,
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, gowsPage, body)
	}))
	defer site.Close()

	for _, page := range []string{"/plain.html", "/module.html"} {
		t.Run(strings.TrimSuffix(page[1:], ".html"), func(t *testing.T) {
			tb := openTab(t, "gows.js "+page, site.URL+page)
			id := wait[string](tb, "welcome", `(() => { const w = window.log.find(e => e.ev === "welcome"); return w ? w.x.clientId : ""; })()`)
			s.post(t, "bind_to_group", "gjsb", map[string]string{"clientId": id, "groupName": "room"})
			wait[bool](tb, "join", `window.log.some(e => e.ev === "join" && e.x.groupName === "room")`)
			s.post(t, "send_to_client", "gjsb", map[string]any{"clientId": id, "data": map[string]int{"n": 1}})
			wait[bool](tb, "message 1", `window.log.some(e => e.ev === "message" && e.x.data.n === 1)`)
			// An ack asked for is sent by the library.
			acked := s.post(t, "send_to_client", "gjsb", map[string]any{"clientId": id, "data": "ack me", "ack": true, "ackTimeout": "5s"})
			if !strings.Contains(string(acked), `"acked":true`) {
				t.Fatalf("acked send answered %s", acked)
			}

			s.cut()
			wait[bool](tb, "reconnecting", `window.log.some(e => e.ev === "reconnecting")`)
			for i := 2; i <= 3; i++ {
				s.post(t, "send_to_client", "gjsb", map[string]any{"clientId": id, "data": map[string]int{"n": i}})
			}
			resumed := wait[string](tb, "the resumed welcome", `(() => { const w = window.log.filter(e => e.ev === "welcome"); return w.length > 1 ? JSON.stringify(w[1].x) : ""; })()`)
			if !strings.Contains(resumed, `"resumed":true`) || !strings.Contains(resumed, id) {
				t.Fatalf("after the cut: welcome %s, want clientId %s resumed", resumed, id)
			}
			got := wait[string](tb, "messages 2 and 3", `(() => { const m = window.log.filter(e => e.ev === "message" && e.x.data && e.x.data.n).map(e => e.x.data.n); return m.length >= 3 ? m.join(",") : ""; })()`)
			if got != "1,2,3" {
				t.Fatalf("messages %s, want 1,2,3 (in order, none twice)", got)
			}
			if st := eval[string](tb, `window.client.state`); st != "open" {
				t.Fatalf("state %s", st)
			}
			eval[bool](tb, `(window.client.close(), true)`)
			wait[bool](tb, "closed", `window.client.state === "closed"`)
		})
	}
}
