// Package clusterfix is the black-box suites' cluster fixture: a real etcd
// server process (Debian's etcd-server binary) that can be stopped and
// restarted on the same ports and data, nginx running a copy of the
// shipped deploy/nginx.conf in front of any set of nodes, and the child
// process type both run as. Every process is stopped by its own PID when the
// test ends; its log is printed when the test failed.
package clusterfix

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// Missing names the tools of the list that are not on PATH ("" when all are).
func Missing(tools ...string) string {
	var absent []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			absent = append(absent, tool)
		}
	}
	return strings.Join(absent, ", ")
}

// Require skips the test when one of the tools is not installed, except
// when CI is set: then it fails.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	missing := Missing(tools...)
	if missing == "" {
		return
	}
	const install = "apt-get install -y --no-install-recommends etcd-server etcd-client nginx"
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but %s not installed (%s)", missing, install)
	}
	t.Skipf("%s not installed (%s); the test is required when CI is set", missing, install)
}

// RandHex is n random bytes in hex.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NodeOf is the node id a clientId names (bytes 1-6 of its raw form, in hex).
func NodeOf(t testing.TB, clientID string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(clientID)
	if err != nil || len(raw) < 7 {
		t.Fatalf("clientId %q is not base64url", clientID)
	}
	return hex.EncodeToString(raw[1:7])
}

// ------------------------------------------------------------------ processes

// Proc is one child process; its output goes to a log file.
type Proc struct {
	t       testing.TB
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
	waitErr error
}

// StartProc starts bin with args in dir with exactly env. It is stopped
// (SIGTERM, then SIGKILL after 10 s) when the test ends.
func StartProc(t testing.TB, name, dir string, env []string, bin string, args ...string) *Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{t: t, Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("---- %s log (tail) ----\n%s", name, p.LogTail(6000))
		}
	})
	return p
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and, after 10 s, SIGKILL (only to this process).
func (p *Proc) Stop() {
	if !p.Running() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Kill9 kills the process without warning and waits for it.
func (p *Proc) Kill9() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// ExitCode waits up to d for the process to end (ok false when it did not).
func (p *Proc) ExitCode(d time.Duration) (code int, ok bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.waitErr, &ee) {
			return ee.ExitCode(), true
		}
		return 0, p.waitErr == nil
	case <-timer.C:
		return 0, false
	}
}

// Log is everything the process wrote.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogTail is the last n bytes of Log.
func (p *Proc) LogTail(n int) string {
	s := p.Log()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// ------------------------------------------------------------------ etcd

// Etcd is one etcd server process on loopback ports of its own.
type Etcd struct {
	*Proc
	t          testing.TB
	Port, Peer int
	Dir        string
}

// StartEtcd starts an etcd server (the etcd binary must be installed: see
// Require) and waits until it answers.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	e := &Etcd{t: t, Dir: t.TempDir()}
	for attempt := 0; attempt < 3; attempt++ {
		e.Port, e.Peer = nodeproc.FreePort(t), nodeproc.FreePort(t)
		if e.launch() {
			return e
		}
	}
	t.Fatalf("etcd did not start:\n%s", e.LogTail(3000))
	return nil
}

// Endpoint is the client address, host:port.
func (e *Etcd) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(e.Port) }

// launch starts the server on e's ports and data and waits until it answers.
func (e *Etcd) launch() bool {
	c, p := "http://"+e.Endpoint(), "http://127.0.0.1:"+strconv.Itoa(e.Peer)
	e.Proc = StartProc(e.t, "etcd", e.Dir, nodeproc.Env(nil), "etcd", "--name", "n1", "--data-dir", filepath.Join(e.Dir, "data"),
		"--listen-client-urls", c, "--advertise-client-urls", c, "--listen-peer-urls", p,
		"--initial-advertise-peer-urls", p, "--initial-cluster", "n1="+p, "--log-level", "warn")
	cli := e.Client()
	defer cli.Close()
	return wstest.PollEvery(15*time.Second, 100*time.Millisecond, func() bool {
		if !e.Running() {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "probe")
		return err == nil
	}) && e.Running()
}

// Restart starts the server again on the same ports and data (after Stop
// or Kill9).
func (e *Etcd) Restart() {
	e.t.Helper()
	if !wstest.PollEvery(10*time.Second, 200*time.Millisecond, e.launch) {
		e.t.Fatalf("etcd did not restart:\n%s", e.LogTail(3000))
	}
}

// Client is a new etcd client of the server; the caller closes it.
func (e *Etcd) Client() *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	return cli
}

// ------------------------------------------------------------------ nginx

var (
	upstreamServerRe = regexp.MustCompile(`(?m)^[ \t]*server[ \t]+node\d+:7800[^;]*;[ \t]*\n`)
	listenRe         = regexp.MustCompile(`(?m)^([ \t]*)listen[ \t]+80;`)
	accessLogRe      = regexp.MustCompile(`access_log[ \t]+\S+`)
)

// Nginx is nginx running a copy of deploy/nginx.conf.
type Nginx struct {
	*Proc
	Addr   string // host:port nginx listens on
	URL    string // http://Addr
	Prefix string // nginx's prefix directory (error.log, access.log)
}

// ErrorLog is nginx's error log.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Prefix, "error.log"))
	return string(b)
}

// StartNginx runs nginx (it must be installed: see Require) with a copy of
// root/deploy/nginx.conf whose upstream lists upstreams (host:port, each
// followed by serverParams, e.g. "max_fails=1 fail_timeout=5s") and whose
// listen port and file paths are the test's, and waits until it proxies
// GET /healthz.
func StartNginx(t testing.TB, root string, upstreams []string, serverParams string) *Nginx {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	prefix := t.TempDir()
	conf := string(src)
	locs := upstreamServerRe.FindAllStringIndex(conf, -1)
	if len(locs) == 0 || len(listenRe.FindAllString(conf, -1)) != 1 || !strings.Contains(conf, "http {\n") {
		t.Fatal("deploy/nginx.conf changed shape: the test expects `server nodeN:7800 ...;` upstream lines, one `listen 80;` and an http block")
	}
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "        server %s", u)
		if serverParams != "" {
			servers.WriteString(" " + serverParams)
		}
		servers.WriteString(";\n")
	}
	conf = conf[:locs[0][0]] + servers.String() + upstreamServerRe.ReplaceAllString(conf[locs[0][0]:], "")
	port := nodeproc.FreePort(t)
	conf = listenRe.ReplaceAllString(conf, "${1}listen 127.0.0.1:"+strconv.Itoa(port)+";")
	conf = accessLogRe.ReplaceAllString(conf, "access_log "+filepath.Join(prefix, "access.log"))
	var temps strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "    %s_temp_path %s;\n", k, filepath.Join(prefix, k+"_temp"))
	}
	conf = strings.Replace(conf, "http {\n", "http {\n"+temps.String(), 1)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	global := "daemon off; pid " + filepath.Join(prefix, "nginx.pid") + ";"
	if os.Geteuid() == 0 {
		global += " user root;" // workers can then use the private temp paths
	}
	p := StartProc(t, "nginx", prefix, nodeproc.Env(nil), "nginx", "-c", confPath, "-p", prefix+"/",
		"-e", filepath.Join(prefix, "error.log"), "-g", global)
	n := &Nginx{Proc: p, Addr: "127.0.0.1:" + strconv.Itoa(port), URL: "http://127.0.0.1:" + strconv.Itoa(port), Prefix: prefix}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- nginx error log ----\n%s", n.ErrorLog())
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ok := wstest.PollEvery(10*time.Second, 20*time.Millisecond, func() bool {
		if !p.Running() {
			return true
		}
		r, err := hc.Get(n.URL + "/healthz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	if !ok || !p.Running() {
		t.Fatalf("nginx did not proxy /healthz within 10 s:\n%s\n%s", p.Log(), n.ErrorLog())
	}
	return n
}
