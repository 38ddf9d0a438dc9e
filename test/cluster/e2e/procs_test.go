package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/clusterfix"
	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// proc is one child process (clusterfix.Proc) under the suite's names.
type proc struct {
	*clusterfix.Proc
	cmd *exec.Cmd
}

// startProc starts bin; its output goes to a log file that is printed when
// the test fails, and it is stopped when the test ends.
func startProc(t *testing.T, name, dir string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := clusterfix.StartProc(t, name, dir, env, bin, args...)
	return &proc{Proc: p, cmd: p.Cmd}
}

func (p *proc) running() bool { return p.Running() }

// kill9 kills the process without warning and waits for it.
func (p *proc) kill9() { p.Kill9() }

// exitCode waits up to d for the process to end.
func (p *proc) exitCode(d time.Duration) (int, bool) { return p.ExitCode(d) }

func (p *proc) logTail(n int) string { return p.LogTail(n) }

func (p *proc) log() string { return p.Log() }

var randHex = clusterfix.RandHex

// ------------------------------------------------------------------ etcd

// etcdProc is the etcd server process (clusterfix.Etcd).
type etcdProc struct{ *clusterfix.Etcd }

func startEtcd(t *testing.T) *etcdProc { return &etcdProc{clusterfix.StartEtcd(t)} }

func (e *etcdProc) endpoint() string { return e.Endpoint() }

func (e *etcdProc) restart() { e.Restart() }

func (e *etcdProc) kill9() { e.Kill9() }

func (e *etcdProc) client() *clientv3.Client { return e.Client() }

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

// startNginx runs nginx with a copy of deploy/nginx.conf whose upstream
// lists the nodes and returns its http://host:port.
func startNginx(t *testing.T, nodes []*nodeProc) string {
	t.Helper()
	var ups []string
	for _, n := range nodes {
		ups = append(ups, "127.0.0.1:"+strconv.Itoa(n.httpPort))
	}
	return clusterfix.StartNginx(t, repoRoot, ups, "max_fails=1 fail_timeout=5s").URL
}
