package e2e

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	codeClientOffline = 10006
	codeUnavailable   = 10009
	codeSystemExists  = 10004
)

// connectSpread connects n clients through nginx and checks that they
// landed on every node.
func (c *cluster) connectSpread(systemID string, n int, reconnect bool) []*client {
	c.t.Helper()
	var cs []*client
	on := map[string]int{}
	for range n {
		cl := c.dial(systemID, reconnect)
		cs = append(cs, cl)
		on[nodeOf(c.t, cl.currentID())]++
	}
	for _, nd := range c.nodes {
		if on[nd.id] == 0 {
			c.t.Fatalf("nginx put no client on node %d (spread %v)", nd.idx, on)
		}
	}
	return cs
}

func (c *cluster) register(systemID string) {
	c.t.Helper()
	if r := c.post("register", "", map[string]any{"systemId": systemID}); r.Code != 0 {
		c.t.Fatalf("register: %s", r)
	}
	// Every node learns it through its watch; connects may land anywhere.
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		for i := 0; ; i++ {
			r, err := c.tryPost(n.url+apiPrefix, "get_online_list", systemID, map[string]any{})
			if err == nil && r.Code == 0 {
				break
			}
			if i == 200 {
				c.t.Fatalf("node %d does not know system %s: %v %v", n.idx, systemID, r, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (c *cluster) sendTo(cl *client) {
	c.t.Helper()
	r := c.post("send_to_client", "app", map[string]any{"clientId": cl.currentID(), "data": map[string]any{"to": cl.currentID()}})
	var res sendResult
	r.decode(c.t, &res)
	if r.Code != 0 {
		c.t.Fatalf("send_to_client %s through nginx: %s", cl.currentID(), r)
	}
	cl.expect(c.t, res.MessageID)
}

func (c *cluster) sendSystem(want int, receivers []*client) sendResult {
	c.t.Helper()
	r := c.post("send_to_system", "app", map[string]any{"data": "all"})
	var res sendResult
	r.decode(c.t, &res)
	if r.Code != 0 || res.Recipients != want {
		c.t.Fatalf("send_to_system: %s, want %d recipients", r, want)
	}
	for _, cl := range receivers {
		cl.expect(c.t, res.MessageID)
	}
	return res
}

func (c *cluster) onlineCount() listResult {
	c.t.Helper()
	var l listResult
	c.post("get_online_list", "app", map[string]any{}).decode(c.t, &l)
	return l
}

func TestClusterThroughNginx(t *testing.T) {
	c := newCluster(t, 3)
	c.register("app")
	if r := c.post("register", "", map[string]any{"systemId": "app"}); r.Code != codeSystemExists || r.Status != http.StatusConflict {
		t.Fatalf("second register: %s", r)
	}
	cs := c.connectSpread("app", 12, false)
	for _, cl := range cs {
		c.sendTo(cl)
	}
	// Group members on every node; join events reach members on every node.
	members := []*client{cs[0], cs[1], cs[2]}
	for _, m := range members {
		if r := c.post("bind_to_group", "app", map[string]any{"clientId": m.currentID(), "groupName": "room"}); r.Code != 0 {
			t.Fatalf("bind: %s", r)
		}
	}
	for i, m := range members {
		for range len(members) - i { // the joins of itself and of those after it
			select {
			case f := <-m.frames:
				if f.Code != 1001 {
					t.Fatalf("member %d: frame %+v, want a 1001 event", i, f)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("member %d: join event missing", i)
			}
		}
	}
	r := c.post("send_to_group", "app", map[string]any{"groupName": "room", "data": "g"})
	var g sendResult
	r.decode(t, &g)
	if r.Code != 0 || g.Recipients != 3 {
		t.Fatalf("send_to_group: %s", r)
	}
	for _, m := range members {
		m.expect(t, g.MessageID)
	}
	c.sendSystem(len(cs), cs)
	if l := c.onlineCount(); l.Count != len(cs) || l.Unreachable != nil {
		t.Fatalf("online list: %+v", l)
	}
	// The legacy paths work through nginx too.
	if r, err := c.tryPost(c.lb+"/api/", "send_to_client", "app", map[string]any{"clientId": cs[4].currentID()}); err != nil || r.Code != 0 {
		t.Fatalf("legacy /api/send_to_client: %v %v", r, err)
	}
}

func TestKill9NodeWithClients(t *testing.T) {
	c := newCluster(t, 3)
	c.register("app")
	cs := c.connectSpread("app", 12, false)
	victim := c.nodes[1]
	var dead, alive []*client
	for _, cl := range cs {
		if nodeOf(t, cl.currentID()) == victim.id {
			dead = append(dead, cl)
		} else {
			alive = append(alive, cl)
		}
	}
	survivors := []*nodeProc{c.nodes[0], c.nodes[2]}

	killed := time.Now()
	victim.kill9()
	// Its clients lose their connection (nginx closes the client side).
	for _, cl := range dead {
		select {
		case <-cl.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("client of the killed node still connected")
		}
	}
	// The backend sees 10009 (registered, unreachable) and then 10006
	// (lease expired), each answer within the RPC deadline (1 s).
	var firstOffline time.Duration
	for i := 0; firstOffline == 0; i++ {
		for _, cl := range dead {
			r := c.post("send_to_client", "app", map[string]any{"clientId": cl.currentID()})
			if r.Code != codeUnavailable && r.Code != codeClientOffline {
				t.Fatalf("send to a client of the killed node: %s", r)
			}
			if r.Took > 1500*time.Millisecond {
				t.Fatalf("send to a client of the killed node took %v", r.Took)
			}
			if r.Code == codeClientOffline && firstOffline == 0 {
				firstOffline = time.Since(killed)
			}
		}
		if i > 0 && time.Since(killed) > 6*time.Second {
			t.Fatalf("still no 10006 %v after the kill", time.Since(killed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.waitPeers(survivors, 1, 5*time.Second)
	peersDropped := time.Since(killed)
	t.Logf("kill -9: first 10006 through nginx %v after the kill, survivors' peer tables dropped the node within %v (lease TTL 2 s)",
		firstOffline.Round(time.Millisecond), peersDropped.Round(time.Millisecond))
	if l := c.onlineCount(); l.Count != len(alive) || l.Unreachable != nil {
		t.Fatalf("online list after the kill: %+v, want %d clients", l, len(alive))
	}
	c.sendSystem(len(alive), alive)
	for _, cl := range alive {
		c.sendTo(cl)
	}
	// New clients land on the survivors (nginx skips the dead node).
	for range 4 {
		cl := c.dial("app", false)
		if nodeOf(t, cl.currentID()) == victim.id {
			t.Fatal("a new client landed on the dead node")
		}
		c.sendTo(cl)
	}
}

func TestSigtermDrainsAndClientsReconnect(t *testing.T) {
	c := newCluster(t, 3)
	c.register("app")
	cs := c.connectSpread("app", 12, true)
	leaving := c.nodes[2]
	var moved []*client
	for _, cl := range cs {
		if nodeOf(t, cl.currentID()) == leaving.id {
			moved = append(moved, cl)
		}
	}
	start := time.Now()
	if err := leaving.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, exited := leaving.exitCode(10 * time.Second)
	if !exited || code != 0 {
		t.Fatalf("node after SIGTERM: exited %v, code %d, want 0 within the drain timeout\n%s", exited, code, leaving.logTail(3000))
	}
	t.Logf("SIGTERM: node exited 0 after %v", time.Since(start).Round(time.Millisecond))
	logText := leaving.log()
	if i, j := strings.Index(logText, "left the cluster"), strings.Index(logText, "stopped"); i < 0 || j < i {
		t.Fatalf("the node did not leave etcd before it stopped:\n%s", leaving.logTail(3000))
	}
	// Its clients got 1001 and came back through nginx with new ids on the
	// other nodes; the backend finds them with get_online_list.
	for _, cl := range moved {
		deadline := time.After(10 * time.Second)
		for cl.connects() < 2 {
			select {
			case <-cl.changed:
			case <-deadline:
				t.Fatalf("client did not reconnect (closes %v)", cl.closeCodes())
			}
		}
		if codes := cl.closeCodes(); len(codes) == 0 || codes[0] != 1001 {
			t.Fatalf("close codes %v, want 1001 first", codes)
		}
		if nodeOf(t, cl.currentID()) == leaving.id {
			t.Fatal("a client reconnected to the stopped node")
		}
	}
	var l listResult
	for i := 0; ; i++ {
		l = c.onlineCount()
		if l.Count == len(cs) {
			break
		}
		if i == 200 {
			t.Fatalf("online list %+v, want %d clients back", l, len(cs))
		}
		time.Sleep(25 * time.Millisecond)
	}
	for _, cl := range moved {
		if !slices.Contains(l.List, cl.currentID()) {
			t.Fatalf("new id %s not in the online list", cl.currentID())
		}
		c.sendTo(cl)
	}
	c.sendSystem(len(cs), cs)
}

func TestEtcdDownDeliveryGoesOn(t *testing.T) {
	c := newCluster(t, 3)
	c.register("app")
	cs := c.connectSpread("app", 6, false)
	c.etcd.kill9()
	start := time.Now()
	r := c.post("register", "", map[string]any{"systemId": "during"})
	if r.Code != codeUnavailable || r.Status != http.StatusServiceUnavailable {
		t.Fatalf("register while etcd is down: %s, want 10009/503", r)
	}
	// Until and after the leases are lost (TTL 2 s), delivery goes on.
	for time.Since(start) < 3500*time.Millisecond {
		for _, cl := range cs {
			c.sendTo(cl)
		}
		c.sendSystem(len(cs), cs)
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range c.nodes {
		if s, _ := c.status(n.url + "/readyz"); s != http.StatusServiceUnavailable {
			t.Fatalf("node %d readyz %d while etcd is down, want 503", n.idx, s)
		}
	}
	c.etcd.restart()
	restarted := time.Now()
	for _, n := range c.nodes {
		if !c.waitReady(n, 15*time.Second) {
			t.Fatalf("node %d did not register again:\n%s", n.idx, n.logTail(3000))
		}
		if !strings.Contains(n.log(), "registered in etcd again") {
			t.Fatalf("node %d did not log its re-registration", n.idx)
		}
	}
	c.waitPeers(c.nodes, 2, 10*time.Second)
	t.Logf("etcd restarted: all nodes registered again and converged after %v", time.Since(restarted).Round(time.Millisecond))
	if r := c.post("register", "", map[string]any{"systemId": "after"}); r.Code != 0 {
		t.Fatalf("register after etcd came back: %s", r)
	}
	for _, cl := range cs {
		c.sendTo(cl)
	}
}

func TestRPCPortRefusesStrangers(t *testing.T) {
	c := newCluster(t, 2)
	n := c.nodes[0]
	conn, err := net.DialTimeout("tcp", n.rpcAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// More than a whole handshake answer, without the secret.
	_, _ = fmt.Fprintf(conn, "%s", strings.Repeat("x", 128))
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1024)
	total := 0
	for {
		k, err := conn.Read(buf)
		total += k
		if err != nil {
			break
		}
	}
	if total > 46 { // the server's hello (magic, node id, nonce) and nothing more
		t.Fatalf("the RPC port sent %d bytes to a stranger", total)
	}
	for i := 0; !strings.Contains(n.log(), "rpc connection refused"); i++ {
		if i == 100 {
			t.Fatalf("refusal not logged:\n%s", n.logTail(2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
