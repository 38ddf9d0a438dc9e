package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutProxy forwards TCP connections to a target and can cut them all at
// once (both sides closed without a WebSocket close frame: a network drop).
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(s, c); s.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
	}
}

// cut closes every connection the proxy carries.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// nodeScript drives gows.js from Node: it prints every event as one JSON
// line, answers {"cmd":"upstream"} pushes with an upstream message and
// closes on {"cmd":"exit"}.
const nodeScript = `
const { GowsClient } = require(process.argv[2]);
const WebSocket = require("ws");
const c = new GowsClient({ url: process.argv[3], systemId: process.argv[4], WebSocket, initialDelay: 100, maxDelay: 1000 });
for (const ev of ["state", "welcome", "message", "join", "leave", "close", "reconnecting"]) {
  c.on(ev, (x) => console.log(JSON.stringify({ ev, x })));
}
c.on("message", (m) => {
  if (m.data && m.data.cmd === "upstream") c.send({ echo: m.data.n });
  if (m.data && m.data.cmd === "exit") c.close();
});
c.on("state", (s) => { if (s === "closed") setTimeout(() => process.exit(0), 50); });
c.connect();
setTimeout(() => { console.error("timeout"); process.exit(2); }, 60000);
`

// lockedBuf collects a process's stderr while the test may read it.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// jsEvent is one line of the script's output.
type jsEvent struct {
	Ev string          `json:"ev"`
	X  json.RawMessage `json:"x"`
}

type jsRun struct {
	t      *testing.T
	events chan jsEvent
	quit   chan struct{}
	done   chan struct{} // closed when node exited; then err is set
	err    error
	stderr *lockedBuf
}

// next waits for an event named ev (skipping others, bounded) and returns it.
func (r *jsRun) next(ev string, within time.Duration) jsEvent {
	r.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e, ok := <-r.events:
			if !ok {
				r.t.Fatalf("the client exited waiting for %q: %s", ev, r.stderr.String())
			}
			r.t.Logf("gows.js: %s %s", e.Ev, e.X)
			if e.Ev == ev {
				return e
			}
		case <-deadline:
			r.t.Fatalf("no %q event within %v", ev, within)
		}
	}
}

// installWS installs the ws package into a temporary directory (npm, from
// its registry) and returns the directory.
func installWS(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but node is not installed (apt-get install nodejs npm)")
		}
		t.Skip("node is not installed (apt-get install nodejs npm)")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--silent", "ws@8")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install ws: %v\n%s", err, out)
	}
	return dir
}

// runGowsJS downloads /gows.js from the node, and runs the script against
// url in Node.
func runGowsJS(t *testing.T, n *node, dir, url, systemID string) *jsRun {
	t.Helper()
	resp, err := n.hc.Get(n.url + "/gows.js")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET /gows.js: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lib := filepath.Join(dir, "gows.js")
	script := filepath.Join(dir, "run.js")
	if err := os.WriteFile(lib, js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(nodeScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, lib, url, systemID)
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &jsRun{t: t, events: make(chan jsEvent, 256), quit: make(chan struct{}), done: make(chan struct{}), stderr: &lockedBuf{}}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e jsEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				select {
				case r.events <- e:
				case <-r.quit: // the test is over: read on to the end
				}
			}
		}
		close(r.events)
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		close(r.quit)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// gows.js in Node with the ws package: it connects, receives pushes and
// membership events, sends upstream messages and acks, and after a
// connection cut reconnects and resumes its session with the frames it
// missed, in order.
func TestGowsJSNode(t *testing.T) {
	t.Parallel()
	dir := installWS(t)
	rcv := newReceiver(t)
	n := startNode(t, map[string]string{"GOWS_WEBSOCKET_SESSIONTTL": "30s"})
	n.registerHook(t, "gjs", rcv, "message")
	proxy := newCutProxy(t, "127.0.0.1:"+strconv.Itoa(n.port))
	r := runGowsJS(t, n, dir, "ws://"+proxy.addr(), "gjs")

	var w struct {
		ClientID string `json:"clientId"`
		Resumed  bool   `json:"resumed"`
	}
	mustUnmarshal(t, r.next("welcome", 10*time.Second).X, &w)
	if w.ClientID == "" || w.Resumed {
		t.Fatalf("welcome %+v", w)
	}
	n.bind(t, "gjs", w.ClientID, "room", "", "")
	if e := r.next("join", 5*time.Second); !strings.Contains(string(e.X), `"groupName":"room"`) {
		t.Fatalf("join %s", e.X)
	}
	n.sendToClient(t, "gjs", w.ClientID, `{"n":1}`)
	if e := r.next("message", 5*time.Second); !strings.Contains(string(e.X), `"data":{"n":1}`) {
		t.Fatalf("message %s", e.X)
	}
	// An upstream message reaches the webhook.
	n.sendToClient(t, "gjs", w.ClientID, `{"cmd":"upstream","n":7}`)
	rcv.waitFor(t, 10*time.Second, "the upstream message", func(evs []hookEvent) bool {
		return len(evs) == 1 && string(evs[0].Data) == `{"echo":7}` && evs[0].ClientID == w.ClientID
	})
	// An acked send is acked by the library.
	data := n.ok(t, "send_to_client", "gjs", map[string]any{"clientId": w.ClientID, "data": "ack me", "ack": true, "ackTimeout": "5s"})
	if !strings.Contains(string(data), `"acked":true`) {
		t.Fatalf("acked send answered %s", data)
	}

	// Cut the connection; send while the client is away.
	proxy.cut()
	r.next("reconnecting", 10*time.Second)
	for i := 2; i <= 4; i++ {
		n.sendToClient(t, "gjs", w.ClientID, `{"n":`+strconv.Itoa(i)+`}`)
	}
	var w2 struct {
		ClientID string `json:"clientId"`
		Resumed  bool   `json:"resumed"`
	}
	mustUnmarshal(t, r.next("welcome", 15*time.Second).X, &w2)
	if !w2.Resumed || w2.ClientID != w.ClientID {
		t.Fatalf("after the cut: welcome %+v, want the same clientId resumed", w2)
	}
	for i := 2; i <= 4; i++ {
		if e := r.next("message", 5*time.Second); !strings.Contains(string(e.X), `"data":{"n":`+strconv.Itoa(i)+`}`) {
			t.Fatalf("missed frame %d arrived as %s", i, e.X)
		}
	}
	n.sendToClient(t, "gjs", w.ClientID, `{"cmd":"exit"}`)
	r.next("close", 5*time.Second)
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("node: %v: %s", r.err, r.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not exit")
	}
}
