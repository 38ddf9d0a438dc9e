package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
)

var (
	// binPath is the server binary under test, built once by TestMain.
	binPath string
	// repoRoot is the directory holding the module's go.mod.
	repoRoot string
	// confPath is the repository's conf.ini, passed to every node with -c.
	confPath string
)

// newTransport is the HTTP transport of one node's API calls (keep-alive
// connections are reused; they are closed before the node is stopped so
// that a never-used pooled connection cannot hold up its shutdown).
func newTransport() *http.Transport {
	return &http.Transport{
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     5 * time.Second,
		DisableCompression:  true,
	}
}

func TestMain(m *testing.M) {
	os.Exit(nodeproc.RunSuite(m, nodeproc.Suite{Name: "e2e", BinEnv: "E2E_GOWS_BIN", TmpPattern: "gows-e2e-bin-", Parallel: 8},
		func(root, conf, bin string) { repoRoot, confPath, binPath = root, conf, bin }))
}

// node is one server process under test.
type node struct {
	t       testing.TB
	cmd     *exec.Cmd
	port    int
	url     string // http://127.0.0.1:PORT
	dataDir string
	tr      *http.Transport
	hc      *http.Client // API client of this node
	logPath string
	logFile *os.File

	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid after done
	stopOnce sync.Once
	stopCode int
	stopDur  time.Duration
}

// startNode starts a node with the suite's defaults overridden by env and
// waits until GET /healthz answers 200. The node is stopped (SIGTERM, then
// SIGKILL) when the test ends; its output is printed when the test failed.
func startNode(t testing.TB, env map[string]string) *node {
	t.Helper()
	dataDir := env["GOWS_SERVER_DATADIR"]
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	var lastOut string
	for attempt := 0; attempt < 3; attempt++ {
		n, err := tryStartNode(t, env, dataDir)
		if err == nil {
			return n
		}
		lastOut = err.Error()
		if !strings.Contains(lastOut, "address already in use") {
			break
		}
	}
	t.Fatalf("node did not become ready: %s", lastOut)
	return nil
}

func tryStartNode(t testing.TB, env map[string]string, dataDir string) (*node, error) {
	port := nodeproc.FreePort(t)
	full := map[string]string{
		"GOWS_SERVER_HOST":     "127.0.0.1",
		"GOWS_SERVER_HTTPPORT": strconv.Itoa(port),
		"GOWS_SERVER_RPCPORT":  strconv.Itoa(nodeproc.FreePort(t)),
		"GOWS_SERVER_DATADIR":  dataDir,
		"GOWS_LOG_LEVEL":       "warn",
		"GOWS_CLUSTER_ENABLED": "false",
	}
	for k, v := range env {
		full[k] = v
	}
	if v, ok := env["GOWS_SERVER_HTTPPORT"]; ok {
		port, _ = strconv.Atoi(v)
	}
	return launch(t, binPath, []string{"-c", confPath}, full, port, dataDir)
}

// launch starts bin with args and exactly env (plus the test process's
// non-GOWS_ environment) in dir, and waits until it answers GET /healthz on
// port with 200.
func launch(t testing.TB, bin string, args []string, env map[string]string, port int, dir string) (*node, error) {
	logFile, err := os.CreateTemp(t.TempDir(), "node-*.log")
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	var cmd *exec.Cmd
	for attempt := 0; ; attempt++ {
		cmd = exec.Command(bin, args...)
		cmd.Env = nodeproc.Env(env)
		cmd.Dir = dir
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err := cmd.Start()
		if err == nil {
			break
		}
		// A binary this process just wrote can be briefly "busy": a child
		// forked meanwhile by a parallel test inherited the write descriptor
		// until its own exec. Retry a few times.
		if errors.Is(err, syscall.ETXTBSY) && attempt < 20 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		_ = logFile.Close()
		t.Fatalf("start node: %v", err)
	}
	n := &node{
		t: t, cmd: cmd, port: port,
		url:     "http://127.0.0.1:" + strconv.Itoa(port),
		dataDir: dir, logPath: logFile.Name(), logFile: logFile,
		tr:   newTransport(),
		done: make(chan struct{}),
	}
	n.hc = &http.Client{Transport: n.tr, Timeout: 15 * time.Second}
	go func() {
		n.waitErr = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("---- output of node %s (pid %d) ----\n%s\n---- end of node output ----", n.url, cmd.Process.Pid, n.output())
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		select {
		case <-n.done:
			return nil, fmt.Errorf("node exited before ready (%v); output:\n%s", n.waitErr, n.output())
		default:
		}
		resp, err := n.hc.Get(n.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.stop()
	return nil, fmt.Errorf("GET /healthz did not answer 200 within 10s; output:\n%s", n.output())
}

// output returns what the node printed so far.
func (n *node) output() string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	const max = 64 << 10
	if len(b) > max {
		return "...(cut)...\n" + string(b[len(b)-max:])
	}
	return string(b)
}

// stop sends SIGTERM to the node and waits for it to exit (15 s at most,
// then SIGKILL). It returns the exit code (-1 when killed by a signal) and
// how long the exit took after SIGTERM. Calling it again returns the same.
func (n *node) stop() (int, time.Duration) {
	n.stopOnce.Do(func() {
		n.tr.CloseIdleConnections()
		start := time.Now()
		select {
		case <-n.done:
		default:
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.done:
			case <-time.After(15 * time.Second):
				n.t.Errorf("node %s did not exit within 15s of SIGTERM: killed", n.url)
				_ = n.cmd.Process.Kill()
				<-n.done
			}
		}
		n.stopDur = time.Since(start)
		if n.stopDur > time.Second {
			n.t.Logf("node %s took %v to exit after SIGTERM", n.url, n.stopDur)
		}
		n.stopCode = nodeproc.ExitCode(n.waitErr)
		n.tr.CloseIdleConnections()
		_ = n.logFile.Close()
	})
	return n.stopCode, n.stopDur
}

// wsURL is the WebSocket endpoint for systemID on the main path.
func (n *node) wsURL(systemID string) string {
	return n.wsURLAt("/api/websocket/ws", systemID)
}

func (n *node) wsURLAt(path, systemID string) string {
	return "ws://127.0.0.1:" + strconv.Itoa(n.port) + path + "?systemId=" + urlQueryEscape(systemID)
}

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
