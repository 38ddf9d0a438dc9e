// Package ops tests what an operator sees of a running node: the Prometheus
// metrics at /metrics move by exactly the traffic that was sent.
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
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
)

var (
	binPath  string
	confPath string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := nodeproc.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ops:", err)
		return 1
	}
	confPath = filepath.Join(root, "conf.ini")
	bin, cleanup, err := nodeproc.ServerBinary(root, "OPS_GOWS_BIN", "gows-ops-bin-")
	defer cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ops:", err)
		return 1
	}
	binPath = bin
	return m.Run()
}

// node is one server process.
type node struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	ws   string // ws://127.0.0.1:PORT
	out  *bytes.Buffer
	done chan error
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// startNode runs the binary with conf.ini and env, and waits until GET
// /healthz answers 200. The node is stopped when the test ends.
func startNode(t *testing.T, env map[string]string) *node {
	t.Helper()
	port := nodeproc.FreePort(t)
	full := map[string]string{
		"GOWS_SERVER_HOST":     "127.0.0.1",
		"GOWS_SERVER_HTTPPORT": strconv.Itoa(port),
		"GOWS_SERVER_RPCPORT":  strconv.Itoa(nodeproc.FreePort(t)),
		"GOWS_SERVER_DATADIR":  t.TempDir(),
		"GOWS_LOG_LEVEL":       "warn",
		"GOWS_CLUSTER_ENABLED": "false",
	}
	for k, v := range env {
		full[k] = v
	}
	cmd := exec.Command(binPath, "-c", confPath)
	cmd.Env = nodeproc.Env(full)
	n := &node{t: t, cmd: cmd, out: &bytes.Buffer{}, done: make(chan error, 1),
		url: "http://127.0.0.1:" + strconv.Itoa(port), ws: "ws://127.0.0.1:" + strconv.Itoa(port)}
	cmd.Stdout = &lockedWriter{w: n.out}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binPath, err)
	}
	go func() { n.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if code := n.stop(); code != 0 {
			t.Errorf("node exited with %d after SIGTERM", code)
		}
		if t.Failed() {
			t.Logf("---- node output ----\n%s\n----", n.output())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 1500 && time.Now().Before(deadline); i++ {
		select {
		case err := <-n.done:
			n.done <- err
			t.Fatalf("node exited before it was ready: %v\n%s", err, n.output())
		default:
		}
		if resp, err := httpClient.Get(n.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GET /healthz did not answer 200 within 15 s\n%s", n.output())
	return nil
}

// stop sends SIGTERM to the process this test started and returns its exit
// code (SIGKILL after 15 s).
func (n *node) stop() int {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-n.done:
	case <-time.After(15 * time.Second):
		n.t.Errorf("node pid %d did not exit within 15 s of SIGTERM: killed", n.cmd.Process.Pid)
		_ = n.cmd.Process.Kill()
		err = <-n.done
	}
	n.done <- err // later calls see the same
	return nodeproc.ExitCode(err)
}

func (n *node) output() string {
	if lw, ok := n.cmd.Stdout.(*lockedWriter); ok {
		return lw.String()
	}
	return ""
}
