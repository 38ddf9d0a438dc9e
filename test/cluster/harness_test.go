package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/routers"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/cluster"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdtest"
	"github.com/go-websocket/go-websocket/servers/store"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
	"github.com/go-websocket/go-websocket/tools/ident"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	secret    = "integration-cluster-secret"
	keyPrefix = "/gows-it"
)

// config of a test cluster.
type config struct {
	nodes      int
	leaseTTL   int
	rpcTimeout time.Duration
}

func defaults() config { return config{nodes: 3, leaseTTL: 2, rpcTimeout: time.Second} }

// testCluster is a real etcd and N real nodes in this process, each with
// its own etcd client, RPC port and HTTP server (the production router).
type testCluster struct {
	t     testing.TB
	cfg   config
	etcd  *etcdtest.Server
	nodes []*tnode
}

// tnode is one node: the production Node, store, cluster and router.
type tnode struct {
	t       testing.TB
	idx     int
	node    *servers.Node
	local   *stallable
	cl      *cluster.Cluster
	sys     *store.Etcd
	cli     *clientv3.Client
	srv     *httptest.Server
	hc      *http.Client
	metrics *metrics.Metrics
	stopped bool
}

// stallable is the node as the RPC service sees it; stall makes every
// forwarded operation hang (a wedged peer) until unstall.
type stallable struct {
	*servers.Node
	mu      sync.Mutex
	release chan struct{}
}

func (s *stallable) wait() {
	s.mu.Lock()
	ch := s.release
	s.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (s *stallable) LocalUnicast(op *servers.UnicastOp) *servers.UnicastReply {
	s.wait()
	return s.Node.LocalUnicast(op)
}

func (s *stallable) LocalBroadcast(op *servers.BroadcastOp) *servers.BroadcastReply {
	s.wait()
	return s.Node.LocalBroadcast(op)
}

func (s *stallable) stall() {
	s.mu.Lock()
	s.release = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallable) unstall() {
	s.mu.Lock()
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
	s.mu.Unlock()
}

func newCluster(t testing.TB, cfg config) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, cfg: cfg, etcd: etcdtest.Start(t)}
	for range cfg.nodes {
		tc.addNode()
	}
	tc.waitConverged(10 * time.Second)
	return tc
}

func (tc *testCluster) addNode() *tnode {
	t := tc.t
	t.Helper()
	n := &tnode{t: t, idx: len(tc.nodes), metrics: metrics.New()}
	log := zap.NewNop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{tc.etcd.Endpoint}, DialTimeout: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n.cli = cli
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n.sys, err = store.OpenEtcd(ctx, cli, keyPrefix, tc.cfg.rpcTimeout, log); err != nil {
		t.Fatal(err)
	}
	n.node = servers.NewNode(servers.Options{
		Hub: servers.HubConfig{PingInterval: 25 * time.Second, PongWait: 60 * time.Second, WriteTimeout: 5 * time.Second,
			QueueLength: 1024, ReadLimit: 8192},
		MembershipEvents: true,
		Secret:           []byte(secret),
		Systems:          n.sys,
		Metrics:          n.metrics,
		Logger:           log,
		EventTimeout:     tc.cfg.rpcTimeout / 2, // as main.go sets it
	})
	n.local = &stallable{Node: n.node}
	if n.cl, err = cluster.New(cluster.Options{Client: cli, KeyPrefix: keyPrefix, LeaseTTL: tc.cfg.leaseTTL,
		Secret: []byte(secret), RPCListen: "127.0.0.1:0", RPCTimeout: tc.cfg.rpcTimeout, RegisterWait: 5 * time.Second,
		Version: "it", Metrics: n.metrics, Logger: log}); err != nil {
		t.Fatal(err)
	}
	n.srv = httptest.NewServer(routers.New(routers.Options{Node: n.node, Logger: log, Metrics: n.metrics,
		MaxBodyBytes: 1 << 20, Ready: n.cl.Ready}))
	n.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	n.node.SetHTTPAddr(n.srv.Listener.Addr().String())
	if err := n.cl.Start(n.local, n.srv.Listener.Addr().String()); err != nil {
		t.Fatal(err)
	}
	n.node.SetRemote(n.cl)
	tc.nodes = append(tc.nodes, n)
	t.Cleanup(n.stop)
	return n
}

// stop shuts the node down as main does: leave, drain, close.
func (n *tnode) stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	n.local.unstall()
	n.cl.Leave(context.Background())
	n.node.Shutdown(time.Now().Add(2 * time.Second))
	n.node.SetRemote(nil)
	n.cl.Close()
	n.srv.Close()
	n.hc.CloseIdleConnections()
	n.sys.Close()
	_ = n.cli.Close()
}

// crash kills the node without warning: its RPC port and keepalive stop,
// the lease is left to expire, its sockets close; nothing is said to peers.
func (n *tnode) crash() {
	n.stopped = true
	n.local.unstall()
	n.cl.Crash()
	n.node.SetRemote(nil)
	n.node.Shutdown(time.Now())
	n.srv.Close()
	n.hc.CloseIdleConnections()
	n.sys.Close()
	_ = n.cli.Close()
}

func (n *tnode) id() string { return n.node.ID().String() }

// peer is n's view of other.
func (n *tnode) peer(other *tnode) (cluster.PeerStatus, bool) {
	for _, p := range n.cl.Peers() {
		if p.ID == other.id() {
			return p, true
		}
	}
	return cluster.PeerStatus{}, false
}

func (tc *testCluster) live() []*tnode {
	var out []*tnode
	for _, n := range tc.nodes {
		if !n.stopped {
			out = append(out, n)
		}
	}
	return out
}

// waitConverged waits until every live node is ready and sees every other
// live node, up.
func (tc *testCluster) waitConverged(within time.Duration) {
	tc.t.Helper()
	live := tc.live()
	for _, n := range live {
		waitTable(tc.t, n, within, "cluster converged", func() bool {
			if n.cl.Ready() != nil || len(n.cl.Peers()) != len(live)-1 {
				return false
			}
			for _, o := range live {
				if p, ok := n.peer(o); o != n && (!ok || !p.Up) {
					return false
				}
			}
			return true
		})
	}
}

// waitTable waits, on n's peer-table notifications (and a short tick for
// state that changes without one), until cond holds; it returns how long.
func waitTable(t testing.TB, n *tnode, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	timer := time.NewTimer(within)
	defer timer.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ch := n.cl.Changed()
		if cond() {
			return time.Since(start)
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-timer.C:
			t.Fatalf("node %d: not within %v: %s (peers %+v)", n.idx, within, what, n.cl.Peers())
		}
	}
}

// eventually polls cond (bounded) for conditions with no notification.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return wstest.Eventually(t, within, cond, what)
}

// register registers a system through n's API and waits until every live
// node knows it.
func (tc *testCluster) register(n *tnode, systemID string) {
	tc.t.Helper()
	r := n.post(tc.t, "register", "", map[string]any{"systemId": systemID})
	if r.Code != 0 {
		tc.t.Fatalf("register %s: %s", systemID, r)
	}
	for _, o := range tc.live() {
		eventually(tc.t, 5*time.Second, "system known on node "+fmt.Sprint(o.idx), func() bool { return o.node.SystemExists(systemID) })
	}
}

// ------------------------------------------------------------------ HTTP

// resp is one API answer (wstest.Resp).
type resp struct{ *wstest.Resp }

func (r *resp) decode(t testing.TB, v any) {
	t.Helper()
	r.Decode(t, v)
}

// post calls the API of n; any goroutine may call it (errors are returned in resp.Status 0).
func (n *tnode) post(t testing.TB, endpoint, systemID string, body any) *resp {
	t.Helper()
	r, err := n.tryPost(endpoint, systemID, body)
	if err != nil {
		t.Fatalf("node %d %s: %v", n.idx, endpoint, err)
	}
	return r
}

func (n *tnode) tryPost(endpoint, systemID string, body any) (*resp, error) {
	r, err := (&wstest.API{URL: n.srv.URL, Client: n.hc}).Post(endpoint, systemID, body)
	if err != nil {
		return nil, err
	}
	return &resp{r}, nil
}

func (n *tnode) get(t testing.TB, path string) int {
	t.Helper()
	hr, err := n.hc.Get(n.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	return hr.StatusCode
}

type sendResult struct {
	MessageID   string   `json:"messageId"`
	Recipients  int      `json:"recipients"`
	Delivered   int      `json:"delivered"`
	Offline     []string `json:"offline"`
	Unreachable []string `json:"unreachable"`
}

type listResult struct {
	Count       int      `json:"count"`
	List        []string `json:"list"`
	Unreachable []string `json:"unreachable"`
}

// ------------------------------------------------------------- WebSocket

type frame = wstest.Frame

// wsClient is a wstest client of node.
type wsClient struct {
	*wstest.Client
	id   string
	node *tnode
	conn *websocket.Conn
	done <-chan struct{}
}

func (n *tnode) dial(t testing.TB, systemID string) *wsClient {
	t.Helper()
	c := wstest.MustDial(t, n.srv.URL, systemID, wstest.Options{Dialer: websocket.DefaultDialer})
	return &wsClient{Client: c, id: c.ID, node: n, conn: c.Conn, done: c.Done()}
}

// next returns the next frame, failing after within.
func (c *wsClient) next(t testing.TB, within time.Duration) frame {
	t.Helper()
	raw, err := c.Next(within)
	if err != nil {
		t.Fatalf("client %s (node %d): no frame within %v: %v", c.id, c.node.idx, within, err)
	}
	f, err := wstest.ParseFrame(raw)
	if err != nil {
		t.Fatalf("client %s (node %d): %v", c.id, c.node.idx, err)
	}
	return f
}

// expect waits for the frame with messageID, skipping nothing: it must be
// the next one.
func (c *wsClient) expect(t testing.TB, messageID string) frame {
	t.Helper()
	f := c.next(t, 5*time.Second)
	if f.MessageID != messageID {
		t.Fatalf("client %s (node %d): got frame %s, want messageId %s", c.id, c.node.idx, f.Raw, messageID)
	}
	return f
}

// expectSkipping waits for the frame with messageID, counting the 1002
// events about gone that arrive before it in left.
func (c *wsClient) expectSkipping(t testing.TB, messageID string, gone *wsClient, left *int) {
	t.Helper()
	for range 3 {
		f := c.next(t, 5*time.Second)
		if f.MessageID == messageID {
			return
		}
		var ev struct {
			ClientID string `json:"clientId"`
		}
		_ = json.Unmarshal(f.Data, &ev)
		if f.Code != 1002 || ev.ClientID != gone.id {
			t.Fatalf("client %s (node %d): got frame %s, want messageId %s", c.id, c.node.idx, f.Raw, messageID)
		}
		*left++
	}
	t.Fatalf("client %s (node %d): messageId %s not received", c.id, c.node.idx, messageID)
}

// expectEvent waits for a membership event (code 1001/1002) about member.
func (c *wsClient) expectEvent(t testing.TB, code int, member *wsClient, group string) {
	t.Helper()
	f := c.next(t, 5*time.Second)
	var ev struct {
		ClientID  string `json:"clientId"`
		GroupName string `json:"groupName"`
	}
	_ = json.Unmarshal(f.Data, &ev)
	if f.Code != code || ev.ClientID != member.id || ev.GroupName != group {
		t.Fatalf("client %s (node %d): got %s, want event %d about %s in %s", c.id, c.node.idx, f.Raw, code, member.id, group)
	}
}

// quiet checks that no frame arrives for a short while.
func (c *wsClient) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	if raw, err := c.Next(d); err == nil {
		t.Fatalf("client %s (node %d): unexpected frame %s", c.id, c.node.idx, raw)
	}
}

// closeCode is the close code the client received (0: none, or still open).
func (c *wsClient) closeCode() int {
	select {
	case <-c.Done():
		if code := wstest.CodeOf(c.Err()); code > 0 {
			return code
		}
	default:
	}
	return 0
}

// forge returns a well-formed clientId of a node that does not exist, MAC'd
// with the cluster secret (what a leaked secret could produce).
func forge(systemID string) string {
	return ident.NewMinter(ident.NewNodeID(), []byte(secret)).Mint(systemID)
}

func tamper(id string) string {
	b := []byte(id)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
		if m[s] < 0 {
			return false
		}
	}
	return true
}

func ids(cs ...*wsClient) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out
}
