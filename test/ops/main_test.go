// Package ops tests what an operator sees of a running node: the Prometheus
// metrics at /metrics move by exactly the traffic that was sent, the health
// endpoints, logs, configuration errors, restarts and the graceful shutdown.
//
// TestMain builds the server binary from the repository root (go build -o BIN .);
// each test starts its own node process on a free loopback port with a
// private data directory, configured through GOWS_* environment overrides of
// the repository's conf.ini, and stops it with SIGTERM to the PID it started.
//
// Run: GOTOOLCHAIN=go1.27.3 go test -race -count=1 ./test/ops/
//
// Set OPS_GOWS_BIN to a prebuilt binary to skip the build.
package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

var (
	binPath  string
	confPath string
)

func TestMain(m *testing.M) {
	os.Exit(nodeproc.RunSuite(m, nodeproc.Suite{Name: "ops", BinEnv: "OPS_GOWS_BIN", TmpPattern: "gows-ops-bin-", Parallel: 4},
		func(_, conf, bin string) { confPath, binPath = conf, bin }))
}

// node is one server process with its API client.
type node struct {
	*nodeproc.Node
	t      testing.TB
	api    *wstest.API
	killed bool // ended with SIGKILL: no exit code to check
}

// startNode runs the binary with conf.ini and env, and waits until GET
// /healthz answers 200. The node is stopped when the test ends, and must
// then exit 0.
func startNode(t testing.TB, env map[string]string) *node {
	t.Helper()
	return wrap(t, nodeproc.Start(t, binPath, confPath, env))
}

func wrap(t testing.TB, p *nodeproc.Node) *node {
	n := &node{Node: p, t: t, api: &wstest.API{URL: p.URL, Client: p.HC}}
	t.Cleanup(func() {
		if code, _ := n.Stop(); code != 0 && !n.killed {
			t.Errorf("node exited with %d after SIGTERM", code)
		}
	})
	return n
}

// call calls an endpoint (body: raw JSON as string or []byte, or a value to
// encode); systemID "" sends no header. Every answer must pass
// wstest.CheckEnvelope (an error otherwise).
func (n *node) call(endpoint, systemID string, body any) *wstest.Resp {
	n.t.Helper()
	r := n.api.Call(n.t, endpoint, systemID, body)
	if err := wstest.CheckEnvelope(r); err != nil {
		n.t.Errorf("%v", err)
	}
	return r
}

// must requires code 0 (and HTTP 200) and returns data.
func (n *node) must(endpoint, systemID string, body any) json.RawMessage {
	n.t.Helper()
	r := n.call(endpoint, systemID, body)
	if r.Code != 0 || r.Status != http.StatusOK {
		n.t.Fatalf("%s: want code 0 / HTTP 200", r)
	}
	return r.Data
}

// fail requires the error code and its HTTP status.
func (n *node) fail(endpoint, systemID string, body any, code int) {
	n.t.Helper()
	if r := n.call(endpoint, systemID, body); r.Code != code || r.Status != wstest.StatusOfCode[code] {
		n.t.Errorf("%s: want code %d / HTTP %d", r, code, wstest.StatusOfCode[code])
	}
}

// kill ends the node with SIGKILL (a crash) and waits for it.
func (n *node) kill() {
	n.killed = true
	n.Kill()
}

// register registers systemID; the answer must name it.
func (n *node) register(systemID string) {
	n.t.Helper()
	var d struct {
		SystemID string `json:"systemId"`
	}
	wstest.Decode(n.t, n.must("register", "", map[string]string{"systemId": systemID}), &d)
	if d.SystemID != systemID {
		n.t.Fatalf("register %q answered systemId %q", systemID, d.SystemID)
	}
}

// bind puts a client into a group (no userId, no extend); data must be {}.
func (n *node) bind(systemID, clientID, group string) {
	n.t.Helper()
	data := n.must("bind_to_group", systemID, map[string]any{
		"clientId": clientID, "groupName": group, "sendUserId": "admin", "userId": "", "extend": "",
	})
	if string(bytes.TrimSpace(data)) != "{}" {
		n.t.Errorf("bind_to_group data %s, want {}", data)
	}
}

// dial connects a client of systemID (it is aborted when the test ends).
func (n *node) dial(systemID string) *wstest.Client {
	n.t.Helper()
	return wstest.MustDial(n.t, n.URL, systemID, wstest.Options{})
}

// sendToClient pushes data (raw JSON) to one client and returns the messageId.
func (n *node) sendToClient(systemID, clientID, data string) string {
	n.t.Helper()
	var d struct {
		MessageID string `json:"messageId"`
	}
	wstest.Decode(n.t, n.must("send_to_client", systemID, `{"clientId":`+jsonStr(clientID)+`,"sendUserId":"u1","code":7,"msg":"hi","data":`+data+`}`), &d)
	wstest.CheckMessageID(n.t, d.MessageID)
	return d.MessageID
}

func jsonStr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// runBinary runs the binary with args and env (GOWS_ variables of the test
// process removed), bounded by timeout; it returns the exit code (-1 when it
// had to be killed) and the combined output.
func runBinary(t testing.TB, timeout time.Duration, env map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = nodeproc.Env(env)
	cmd.Dir = t.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, buf.String()
	}
	return nodeproc.ExitCode(err), buf.String()
}
