// Package nodeproc is the black-box suites' shared process harness: it finds
// the repository root, builds the server binary, picks free loopback ports
// and prepares the environment of a node process (test/e2e, test/security,
// test/ops and test/cluster/e2e use it).
//
// How each suite starts, waits for and stops its processes stays in the
// suite: their lifecycles (log capture, stop timeouts, exit-code handling)
// differ on purpose.
package nodeproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ModulePath is the module whose go.mod marks the repository root.
const ModulePath = "github.com/go-websocket/go-websocket"

// BuildTimeout bounds one go build of the server.
const BuildTimeout = 8 * time.Minute

// RepoRoot walks up from the working directory to the go.mod of ModulePath.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" && f[1] == ModulePath {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no go.mod of module %s above the working directory", ModulePath)
}

// BuildServer builds the server (go build -o BIN . in root, bounded by
// BuildTimeout) into dir/go-websocket and returns that path. When the build
// fails on the VCS status it is retried with -buildvcs=false. The error
// carries the compiler output.
func BuildServer(root, dir string) (string, error) {
	bin := filepath.Join(dir, "go-websocket")
	build := func(extra ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
		defer cancel()
		args := append(append([]string{"build"}, extra...), "-o", bin, ".")
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		return cmd.CombinedOutput()
	}
	out, err := build()
	if err != nil && strings.Contains(string(out), "VCS status") {
		out, err = build("-buildvcs=false")
	}
	if err != nil {
		return "", fmt.Errorf("go build -o BIN . in %s failed: %v\n%s", root, err, out)
	}
	return bin, nil
}

// ServerBinary returns the prebuilt binary named by the environment variable
// envVar when it is set (envVar "" means none), or else builds the server
// from root into a new temporary directory (os.MkdirTemp pattern tmpPattern).
// cleanup removes that directory; it is never nil.
func ServerBinary(root, envVar, tmpPattern string) (bin string, cleanup func(), err error) {
	cleanup = func() {}
	if envVar != "" {
		if p := os.Getenv(envVar); p != "" {
			return p, cleanup, nil
		}
	}
	dir, err := os.MkdirTemp("", tmpPattern)
	if err != nil {
		return "", cleanup, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	bin, err = BuildServer(root, dir)
	return bin, cleanup, err
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return p
}

// Env is the environment of a child process: the test process's environment
// without any GOWS_ variable, then overrides as KEY=VALUE.
func Env(overrides map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(strings.ToUpper(kv), "GOWS_") {
			out = append(out, kv)
		}
	}
	for k, v := range overrides {
		out = append(out, k+"="+v)
	}
	return out
}

// ExitCode is the exit code in the error of cmd.Wait: 0 for nil, the
// process's code for an *exec.ExitError (-1 when killed by a signal), and -2
// for any other error.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -2
}
