package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/pkg/setting"
	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
)

// runCLI runs the binary in dir (a new temporary directory when "") with
// args and env, bounded by timeout, and returns the exit code (-1 when it had
// to be killed), stdout and stderr apart.
func runCLI(t *testing.T, dir string, timeout time.Duration, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = nodeproc.Env(env)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, stdout.String(), stderr.String()
	}
	return nodeproc.ExitCode(err), stdout.String(), stderr.String()
}

// stackTrace matches the lines of a Go stack trace (a function, then its
// file:line).
var stackTrace = regexp.MustCompile(`(?m)^(main\.|runtime\.|goroutine \d+)|^\s+/\S+\.go:\d+`)

// --help and -h print the usage once, on stdout, with every configuration
// key, its default (durations with their unit) and its environment variable;
// nothing on stderr; exit 0.
func TestCLIHelp(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--help", "-h"} {
		code, out, errOut := runCLI(t, "", 10*time.Second, nil, flag)
		if code != 0 || errOut != "" {
			t.Errorf("%s: exit %d, stderr %q; want 0 and nothing", flag, code, errOut)
		}
		if n := strings.Count(out, "Usage:"); n != 1 {
			t.Errorf("%s: usage printed %d times:\n%s", flag, n, out)
		}
		for _, f := range setting.Fields() {
			def := f.Default
			if def == "" {
				def = `""`
			}
			if !strings.Contains(out, f.Key+" = "+def) || !strings.Contains(out, f.Env) {
				t.Errorf("%s: no line for %s = %s (%s)", flag, f.Name(), def, f.Env)
			}
		}
		if !strings.Contains(out, "drainTimeout = 10s") {
			t.Errorf("%s: durations without units:\n%s", flag, out)
		}
	}
	code, out, errOut := runCLI(t, "", 10*time.Second, nil, "--no-such-flag")
	if code != 2 || out != "" || strings.Count(errOut, "no-such-flag") != 1 || strings.Contains(errOut, "Usage:") {
		t.Errorf("unknown flag: exit %d, stdout %q, stderr %q; want 2, the flag named once on stderr, no usage dump", code, out, errOut)
	}
}

// --version prints the release, whether or not the build carries a tag.
func TestCLIVersion(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "", 10*time.Second, nil, "--version")
	if code != 0 || errOut != "" || !regexp.MustCompile(`^go-websocket v0\.2\.0( |\n)`).MatchString(out) {
		t.Errorf("--version: exit %d, stdout %q, stderr %q; want go-websocket v0.2.0", code, out, errOut)
	}
}

// A port held by another process: a clear message naming the key and the
// address, no stack trace, a non-zero exit.
func TestCLIPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	env := baseEnv(t, t.TempDir())
	env["GOWS_SERVER_HTTPPORT"] = strconv.Itoa(port)
	code, out, errOut := runCLI(t, "", 15*time.Second, env, "-c", confPath)
	all := out + errOut
	if code == 0 || code == -1 {
		t.Fatalf("exit %d with the port taken; want a non-zero exit at start:\n%s", code, all)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if !strings.Contains(all, "already in use") || !strings.Contains(all, addr) || !strings.Contains(all, "server.httpPort") {
		t.Errorf("the message does not say that %s is in use (server.httpPort):\n%s", addr, all)
	}
	if stackTrace.MatchString(all) {
		t.Errorf("a stack trace follows the message:\n%s", all)
	}
}

// A misspelled GOWS_ variable stops start-up with a message naming it and
// the key it probably meant.
func TestCLIUnknownEnv(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, t.TempDir())
	env["GOWS_WEBSOCKET_PINGINTERVALL"] = "5s"
	code, out, errOut := runCLI(t, "", 10*time.Second, env, "-c", confPath)
	if code == 0 || code == -1 {
		t.Fatalf("exit %d with GOWS_WEBSOCKET_PINGINTERVALL set; want a non-zero exit at start", code)
	}
	if !strings.Contains(errOut, "GOWS_WEBSOCKET_PINGINTERVALL") || !strings.Contains(errOut, "GOWS_WEBSOCKET_PINGINTERVAL)") {
		t.Errorf("the message does not name the variable and its likely key:\n%s%s", out, errOut)
	}
}

// The shutdown log shows drainTimeout with its unit.
func TestCLIShutdownLogShowsUnits(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_LOG_LEVEL": "info", "GOWS_SERVER_DRAINTIMEOUT": "3s"})
	if code, _ := n.stop(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if out := n.output(); !strings.Contains(out, `"drainTimeout": "3s"`) {
		t.Errorf("the shutdown log does not show drainTimeout 3s with its unit:\n%s", out)
	}
}

// A woodylan/go-websocket conf/app.ini in the working directory is read
// without -c: its ports and cluster switch apply, CryptoKey is ignored, and
// each key gets one warning naming the key that replaces it.
func TestCLIOldAppINI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := nodeproc.FreePort(t)
	old := "[common]\nHttpPort = " + strconv.Itoa(port) + "\nRPCPort = " + strconv.Itoa(nodeproc.FreePort(t)) +
		"\n# standalone\nCluster = false\nCryptoKey = Adba723b7fe06819\n\n[etcd]\nEndpoints =\n"
	if err := os.WriteFile(filepath.Join(dir, "conf", "app.ini"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"GOWS_SERVER_HOST":    "127.0.0.1",
		"GOWS_SERVER_DATADIR": filepath.Join(dir, "data"),
		"GOWS_LOG_LEVEL":      "warn",
	}
	n, err := launch(t, binPath, nil, env, port, dir)
	if err != nil {
		t.Fatalf("the node did not start on an old conf/app.ini: %v", err)
	}
	n.register(t, "legacy-sys")
	c := n.dial(t, "legacy-sys")
	defer c.close()
	out := n.output()
	for old, nw := range map[string]string{
		"common.HttpPort": "server.httpPort", "common.RPCPort": "server.rpcPort",
		"common.Cluster": "cluster.enabled", "common.CryptoKey": "ignored", "etcd.Endpoints": "cluster.etcdEndpoints",
	} {
		lines := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "WARN") && strings.Contains(l, old+" ") && strings.Contains(l, nw) {
				lines++
			}
		}
		if lines != 1 {
			t.Errorf("want one warning line naming %s and %s; output:\n%s", old, nw, out)
		}
	}
}
