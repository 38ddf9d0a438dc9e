package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

var (
	// binPath is the server binary under test, built once by TestMain.
	binPath string
	// repoRoot is the directory holding the module's go.mod.
	repoRoot string
	// confPath is the repository's conf.ini, passed to every node with -c.
	confPath string
)

func TestMain(m *testing.M) {
	os.Exit(nodeproc.RunSuite(m, nodeproc.Suite{Name: "e2e", BinEnv: "E2E_GOWS_BIN", TmpPattern: "gows-e2e-bin-", Parallel: 8},
		func(root, conf, bin string) { repoRoot, confPath, binPath = root, conf, bin }))
}

// node is one server process under test (nodeproc.Node) with its API
// client; port, url, dataDir, cmd, tr and hc are the process's Port, URL,
// DataDir, Cmd, Tr and HC.
type node struct {
	*nodeproc.Node
	t       testing.TB
	api     *wstest.API
	port    int
	url     string // http://127.0.0.1:PORT
	dataDir string
	cmd     *exec.Cmd
	tr      *http.Transport
	hc      *http.Client
}

func wrapNode(t testing.TB, p *nodeproc.Node) *node {
	return &node{Node: p, t: t, api: &wstest.API{URL: p.URL, Client: p.HC}, port: p.Port, url: p.URL,
		dataDir: p.DataDir, cmd: p.Cmd, tr: p.Tr, hc: p.HC}
}

// startNode starts a node with the suite's defaults overridden by env and
// waits until GET /healthz answers 200. The node is stopped (SIGTERM, then
// SIGKILL) when the test ends; its output is printed when the test failed.
func startNode(t testing.TB, env map[string]string) *node {
	t.Helper()
	return wrapNode(t, nodeproc.Start(t, binPath, confPath, env))
}

// launch starts bin with args and exactly env (plus the test process's
// non-GOWS_ environment) in dir, and waits until it answers GET /healthz on
// port with 200.
func launch(t testing.TB, bin string, args []string, env map[string]string, port int, dir string) (*node, error) {
	t.Helper()
	p, err := nodeproc.Launch(t, nodeproc.Spec{Bin: bin, Args: args, Env: env, Dir: dir, Port: port, ReadyTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	return wrapNode(t, p), nil
}

// output returns what the node printed so far (its last 64 KiB).
func (n *node) output() string { return n.Tail(64 << 10) }

// stop sends SIGTERM to the node and waits for it to exit (15 s at most,
// then SIGKILL). It returns the exit code (-1 when killed by a signal) and
// how long the exit took after SIGTERM. Calling it again returns the same.
func (n *node) stop() (int, time.Duration) { return n.Stop() }

// wsURL is the WebSocket endpoint for systemID on the main path.
func (n *node) wsURL(systemID string) string { return wstest.URL(n.url, mainWSPath, systemID, nil) }

// baseEnv is a complete, valid environment for a node that is not started
// through startNode.
func baseEnv(t *testing.T, dataDir string) map[string]string {
	return map[string]string{
		"GOWS_SERVER_HOST":     "127.0.0.1",
		"GOWS_SERVER_HTTPPORT": strconv.Itoa(nodeproc.FreePort(t)),
		"GOWS_SERVER_RPCPORT":  strconv.Itoa(nodeproc.FreePort(t)),
		"GOWS_SERVER_DATADIR":  dataDir,
		"GOWS_LOG_LEVEL":       "warn",
	}
}
