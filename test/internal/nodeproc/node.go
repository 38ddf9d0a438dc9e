package nodeproc

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Spec describes one server process for Launch.
type Spec struct {
	Bin  string
	Args []string
	// Env is the process's GOWS_ configuration (the test process's
	// environment without its GOWS_ variables is added, see Env).
	Env map[string]string
	Dir string // working directory ("" = the test's temporary one)
	// Port is the HTTP port the node listens on; ReadyPath (default
	// /healthz) must answer 200 there within ReadyTimeout (default 15 s).
	Port         int
	ReadyPath    string
	ReadyTimeout time.Duration
	StopTimeout  time.Duration // SIGTERM to exit, then SIGKILL (default 15 s)
	// TLS, when set, is the client configuration for a node serving TLS:
	// URL is then https:// and HC trusts what TLS trusts.
	TLS *tls.Config
}

// Node is a running server process. Its output goes to a log file that is
// printed when the test failed; it is stopped with SIGTERM to its own PID
// when the test ends.
type Node struct {
	t       testing.TB
	spec    Spec
	Cmd     *exec.Cmd
	Port    int
	URL     string // http://127.0.0.1:PORT (https:// with Spec.TLS)
	DataDir string // GOWS_SERVER_DATADIR when the spec sets it
	Tr      *http.Transport
	HC      *http.Client // an HTTP client of this node (closed at Stop)
	LogPath string

	logFile  *os.File
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopCode int
	stopDur  time.Duration
}

// Launch starts s.Bin and waits until it is ready. A process that exits
// first, or is not ready in time, is an error that carries its output (the
// caller may retry on "address already in use").
func Launch(t testing.TB, s Spec) (*Node, error) {
	t.Helper()
	if s.ReadyPath == "" {
		s.ReadyPath = "/healthz"
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = 15 * time.Second
	}
	if s.StopTimeout == 0 {
		s.StopTimeout = 15 * time.Second
	}
	if s.Dir == "" {
		s.Dir = t.TempDir()
	}
	logFile, err := os.CreateTemp(t.TempDir(), "node-*.log")
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	var cmd *exec.Cmd
	for attempt := 0; ; attempt++ {
		cmd = exec.Command(s.Bin, s.Args...)
		cmd.Env = Env(s.Env)
		cmd.Dir = s.Dir
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
		t.Fatalf("start %s: %v", s.Bin, err)
	}
	scheme := "http://"
	if s.TLS != nil {
		scheme = "https://"
	}
	n := &Node{
		t: t, spec: s, Cmd: cmd, Port: s.Port, URL: scheme + "127.0.0.1:" + strconv.Itoa(s.Port),
		DataDir: s.Env["GOWS_SERVER_DATADIR"], LogPath: logFile.Name(), logFile: logFile,
		Tr: &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 64, IdleConnTimeout: 5 * time.Second,
			DisableCompression: true, TLSClientConfig: s.TLS},
		done: make(chan struct{}),
	}
	n.HC = &http.Client{Transport: n.Tr, Timeout: 15 * time.Second}
	go func() {
		n.waitErr = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("---- output of node %s (pid %d) ----\n%s\n---- end of node output ----", n.URL, cmd.Process.Pid, n.Tail(64<<10))
		}
	})
	deadline := time.Now().Add(s.ReadyTimeout)
	for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
		select {
		case <-n.done:
			return nil, fmt.Errorf("node exited before ready (%v); output:\n%s", n.waitErr, n.Output())
		default:
		}
		if resp, err := n.HC.Get(n.URL + s.ReadyPath); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.Stop()
	return nil, fmt.Errorf("GET %s did not answer 200 within %v; output:\n%s", s.ReadyPath, s.ReadyTimeout, n.Output())
}

// Defaults is the configuration of a standalone node on free loopback ports
// with its data in dataDir and warnings-only logs.
func Defaults(t testing.TB, dataDir string) map[string]string {
	return map[string]string{
		"GOWS_SERVER_HOST":     "127.0.0.1",
		"GOWS_SERVER_HTTPPORT": strconv.Itoa(FreePort(t)),
		"GOWS_SERVER_RPCPORT":  strconv.Itoa(FreePort(t)),
		"GOWS_SERVER_DATADIR":  dataDir,
		"GOWS_LOG_LEVEL":       "warn",
		"GOWS_CLUSTER_ENABLED": "false",
	}
}

// Start runs bin -c conf as a standalone node with Defaults overridden by
// env (a data directory of its own unless env names one) and waits until
// it is ready. A port taken meanwhile by another process is retried with
// new ports; any other failure fails t.
func Start(t testing.TB, bin, conf string, env map[string]string) *Node {
	t.Helper()
	dataDir := env["GOWS_SERVER_DATADIR"]
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		full := Defaults(t, dataDir)
		for k, v := range env {
			full[k] = v
		}
		port, _ := strconv.Atoi(full["GOWS_SERVER_HTTPPORT"])
		n, err := Launch(t, Spec{Bin: bin, Args: []string{"-c", conf}, Env: full, Dir: dataDir, Port: port})
		if err == nil {
			return n
		}
		last = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("node did not become ready: %v", last)
	return nil
}

// Done is closed when the process has exited.
func (n *Node) Done() <-chan struct{} { return n.done }

// WaitErr is the error of cmd.Wait (valid once Done is closed).
func (n *Node) WaitErr() error { return n.waitErr }

// Pid is the process id.
func (n *Node) Pid() int { return n.Cmd.Process.Pid }

// Output returns what the node printed so far.
func (n *Node) Output() string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	return string(b)
}

// Tail is the last max bytes of Output.
func (n *Node) Tail(max int) string {
	s := n.Output()
	if len(s) > max {
		return "...(cut)...\n" + s[len(s)-max:]
	}
	return s
}

// Stop sends SIGTERM to the node and waits for it to exit (StopTimeout at
// most, then SIGKILL and an error). It returns the exit code (-1 when killed
// by a signal) and how long the exit took. Later calls return the same.
func (n *Node) Stop() (int, time.Duration) {
	n.stopOnce.Do(func() {
		n.Tr.CloseIdleConnections()
		start := time.Now()
		select {
		case <-n.done:
		default:
			_ = n.Cmd.Process.Signal(syscall.SIGTERM)
			timer := time.NewTimer(n.spec.StopTimeout)
			select {
			case <-n.done:
			case <-timer.C:
				n.t.Errorf("node %s did not exit within %v of SIGTERM: killed", n.URL, n.spec.StopTimeout)
				_ = n.Cmd.Process.Kill()
				<-n.done
			}
			timer.Stop()
		}
		n.stopDur = time.Since(start)
		if n.stopDur > time.Second {
			n.t.Logf("node %s took %v to exit after SIGTERM", n.URL, n.stopDur)
		}
		n.stopCode = ExitCode(n.waitErr)
		n.Tr.CloseIdleConnections()
		_ = n.logFile.Close()
	})
	return n.stopCode, n.stopDur
}

// Kill ends the node with SIGKILL (a crash) and waits for it.
func (n *Node) Kill() {
	_ = n.Cmd.Process.Kill()
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.t.Errorf("node %s did not die of SIGKILL within 10s", n.URL)
	}
	n.Stop()
}
