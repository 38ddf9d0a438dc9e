// Package nodeproc is the black-box suites' shared process harness: it finds
// the repository root, builds the server binary, picks free loopback ports,
// prepares the environment of a node process, and starts, waits for and
// stops node processes (Start, Launch) with their output in a log file.
package nodeproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
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

// Suite describes one black-box suite for RunSuite.
type Suite struct {
	Name       string // prefix of its error messages
	BinEnv     string // env var naming a prebuilt binary ("" = always build)
	TmpPattern string // os.MkdirTemp pattern for the built binary
	Parallel   int    // default -test.parallel when not given (0: Go's default)
}

// RunSuite is a suite's TestMain body: it finds the repository and its
// conf.ini, gets the server binary, hands the three paths to set, runs the
// tests and, when they pass, checks the test process leaked no goroutines.
// It returns the exit code for os.Exit.
func RunSuite(m *testing.M, s Suite, set func(root, conf, bin string)) int {
	flag.Parse()
	if s.Parallel > 0 {
		// The tests wait on server processes, not on the CPU: run more of
		// them at once than GOMAXPROCS unless -parallel was given.
		given := false
		flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
		if !given {
			_ = flag.Set("test.parallel", strconv.Itoa(s.Parallel))
		}
	}
	root, err := RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, s.Name+":", err)
		return 1
	}
	conf := filepath.Join(root, "conf.ini")
	if _, err := os.Stat(conf); err != nil {
		fmt.Fprintln(os.Stderr, s.Name+": conf.ini not found:", err)
		return 1
	}
	bin, cleanup, err := ServerBinary(root, s.BinEnv, s.TmpPattern)
	defer cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, s.Name+":", err)
		return 1
	}
	set(root, conf, bin)
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, s.Name+": goroutines leaked by the test process:", err)
			code = 1
		}
	}
	return code
}
