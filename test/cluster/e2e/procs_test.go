package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// proc is one child process; its output goes to a log file that is printed
// when the test fails.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

func startProc(t *testing.T, name, dir string, env []string, bin string, args ...string) *proc {
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
	p := &proc{t: t, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("---- %s log (tail) ----\n%s", name, p.logTail(6000))
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and, after 10 s, SIGKILL (only to this process).
func (p *proc) stop() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill9 kills the process without warning and waits for it.
func (p *proc) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// exitCode waits up to d for the process to end.
func (p *proc) exitCode(d time.Duration) (int, bool) {
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.waitErr, &ee) {
			return ee.ExitCode(), true
		}
		return 0, p.waitErr == nil
	case <-time.After(d):
		return 0, false
	}
}

func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ------------------------------------------------------------------ etcd

type etcdProc struct {
	*proc
	t          *testing.T
	port, peer int
	dir        string
}

func (e *etcdProc) endpoint() string { return "127.0.0.1:" + strconv.Itoa(e.port) }

func startEtcd(t *testing.T) *etcdProc {
	t.Helper()
	e := &etcdProc{t: t, dir: t.TempDir()}
	for attempt := 0; attempt < 3; attempt++ {
		e.port, e.peer = nodeproc.FreePort(t), nodeproc.FreePort(t)
		if e.launch() {
			return e
		}
	}
	t.Fatalf("etcd did not start:\n%s", e.logTail(3000))
	return nil
}

// launch starts the server on e's ports and data and waits until it answers.
func (e *etcdProc) launch() bool {
	c, p := "http://127.0.0.1:"+strconv.Itoa(e.port), "http://127.0.0.1:"+strconv.Itoa(e.peer)
	e.proc = startProc(e.t, "etcd", e.dir, nodeproc.Env(nil), "etcd", "--name", "n1", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", c, "--advertise-client-urls", c, "--listen-peer-urls", p,
		"--initial-advertise-peer-urls", p, "--initial-cluster", "n1="+p, "--log-level", "warn")
	cli := e.client()
	defer cli.Close()
	for i := 0; i < 150; i++ {
		if !e.running() {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "probe")
		cancel()
		if err == nil {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func (e *etcdProc) restart() {
	e.t.Helper()
	for i := 0; i < 20; i++ {
		if e.launch() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("etcd did not restart:\n%s", e.logTail(3000))
}

func (e *etcdProc) client() *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	return cli
}

// ------------------------------------------------------------------ nodes

type nodeInfo struct {
	ID       string `json:"id"`
	RPCAddr  string `json:"rpcAddr"`
	HTTPAddr string `json:"httpAddr"`
}

type nodeProc struct {
	*proc
	idx      int
	httpPort int
	url      string
	id       string
	rpcAddr  string
}

// cluster is etcd, the nodes and nginx of one test.
type cluster struct {
	t      *testing.T
	etcd   *etcdProc
	prefix string
	secret string
	nodes  []*nodeProc
	lb     string   // http://127.0.0.1:PORT of nginx
	env    []string // more environment for every node
	hc     *http.Client
}

func newCluster(t *testing.T, nodes int, env ...string) *cluster {
	t.Helper()
	requireTools(t)
	c := &cluster{t: t, etcd: startEtcd(t), prefix: "/e2e-" + randHex(4), secret: randHex(16), env: env,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	t.Cleanup(c.hc.CloseIdleConnections)
	for i := range nodes {
		c.nodes = append(c.nodes, c.startNode(i))
	}
	c.waitPeers(c.nodes, nodes-1, 15*time.Second)
	c.lb = startNginx(t, c.nodes)
	return c
}

func (c *cluster) startNode(idx int) *nodeProc {
	t := c.t
	t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		n := c.launchNode(idx)
		if c.waitReady(n, 20*time.Second) {
			info := c.nodeInfo(n)
			n.id, n.rpcAddr = info.ID, info.RPCAddr
			return n
		}
		if !strings.Contains(n.log(), "address already in use") {
			t.Fatalf("node %d not ready:\n%s", idx, n.logTail(4000))
		}
	}
	t.Fatalf("node %d: no free ports", idx)
	return nil
}

// launchNode starts a node process without waiting for it.
func (c *cluster) launchNode(idx int) *nodeProc {
	t := c.t
	t.Helper()
	httpPort, rpcPort := nodeproc.FreePort(t), nodeproc.FreePort(t)
	env := append(nodeproc.Env(nil),
		"GOWS_CLUSTER_ENABLED=true",
		"GOWS_CLUSTER_SECRET="+c.secret,
		"GOWS_CLUSTER_ETCDENDPOINTS="+c.etcd.endpoint(),
		"GOWS_CLUSTER_KEYPREFIX="+c.prefix,
		"GOWS_CLUSTER_LEASETTL=2",
		"GOWS_CLUSTER_RPCTIMEOUT=1s",
		"GOWS_SERVER_HOST=127.0.0.1",
		"GOWS_SERVER_HTTPPORT="+strconv.Itoa(httpPort),
		"GOWS_SERVER_RPCPORT="+strconv.Itoa(rpcPort),
		"GOWS_SERVER_DATADIR="+t.TempDir(),
		"GOWS_SERVER_DRAINTIMEOUT=5s",
		"GOWS_LOG_LEVEL=info",
	)
	env = append(env, c.env...)
	n := &nodeProc{idx: idx, httpPort: httpPort, url: "http://127.0.0.1:" + strconv.Itoa(httpPort)}
	n.proc = startProc(t, fmt.Sprintf("node%d", idx), t.TempDir(), env, binPath, "-c", filepath.Join(repoRoot, "conf.ini"))
	return n
}

func (c *cluster) waitReady(n *nodeProc, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && n.running() {
		if s, _ := c.status(n.url + "/readyz"); s == http.StatusOK {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// nodeInfo reads n's registration from etcd.
func (c *cluster) nodeInfo(n *nodeProc) nodeInfo {
	cli := c.etcd.client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, c.prefix+"/nodes/", clientv3.WithPrefix())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		var info nodeInfo
		if json.Unmarshal(kv.Value, &info) == nil && info.HTTPAddr == "127.0.0.1:"+strconv.Itoa(n.httpPort) {
			return info
		}
	}
	c.t.Fatalf("node %d is ready but not registered under %s/nodes/", n.idx, c.prefix)
	return nodeInfo{}
}

func (c *cluster) status(url string) (int, string) {
	r, err := c.hc.Get(url)
	if err != nil {
		return 0, ""
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

var peersRe = regexp.MustCompile(`(?m)^gows_cluster_peers (\d+)`)

// peers scrapes n's gows_cluster_peers gauge (-1 when it cannot).
func (c *cluster) peers(n *nodeProc) int {
	s, body := c.status(n.url + "/metrics")
	m := peersRe.FindStringSubmatch(body)
	if s != http.StatusOK || m == nil {
		return -1
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

func (c *cluster) waitPeers(nodes []*nodeProc, want int, within time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for _, n := range nodes {
		for c.peers(n) != want {
			if time.Since(start) > within {
				c.t.Fatalf("node %d: gows_cluster_peers = %d after %v, want %d", n.idx, c.peers(n), within, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// ------------------------------------------------------------------ nginx

var (
	upstreamServerRe = regexp.MustCompile(`(?m)^[ \t]*server[ \t]+node\d+:7800[^;]*;[ \t]*\n`)
	listenRe         = regexp.MustCompile(`(?m)^([ \t]*)listen[ \t]+80;`)
	accessLogRe      = regexp.MustCompile(`access_log[ \t]+\S+`)
)

// startNginx runs nginx with a copy of deploy/nginx.conf whose upstream
// lists the nodes and whose listen port and file paths are the test's.
func startNginx(t *testing.T, nodes []*nodeProc) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	prefix := t.TempDir()
	conf := string(src)
	locs := upstreamServerRe.FindAllStringIndex(conf, -1)
	if len(locs) == 0 || len(listenRe.FindAllString(conf, -1)) != 1 || !strings.Contains(conf, "http {") {
		t.Fatal("deploy/nginx.conf changed shape: the test expects `server nodeN:7800 ...;` upstream lines, one `listen 80;` and an http block")
	}
	var servers strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&servers, "        server 127.0.0.1:%d max_fails=1 fail_timeout=5s;\n", n.httpPort)
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
	p := startProc(t, "nginx", prefix, nodeproc.Env(nil), "nginx", "-c", confPath, "-p", prefix+"/",
		"-e", filepath.Join(prefix, "error.log"), "-g", global)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 200; i++ {
		if !p.running() {
			errLog, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			t.Fatalf("nginx exited:\n%s\n%s", p.log(), errLog)
		}
		if r, err := hc.Get(url + "/healthz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return url
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("nginx did not proxy /healthz within 5 s")
	return ""
}
