// Package clustertest checks cluster mode with real parts in one process: a
// real etcd (embed), several production nodes (servers.Node, the etcd
// store, the cluster layer, the production router on httptest servers),
// real HTTP calls and real WebSocket clients.
//
// Run: GOTOOLCHAIN=go1.27.3 go test -race -count=1 ./test/cluster/
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
	"github.com/go-websocket/go-websocket/tools/ident"
)

func TestUnicastAcrossNodes(t *testing.T) {
	tc := newCluster(t, defaults())
	tc.register(tc.nodes[0], "s1")
	var clients []*wsClient
	for _, n := range tc.nodes {
		clients = append(clients, n.dial(t, "s1"), n.dial(t, "s1"))
	}
	// Every node's API reaches every client, wherever it is connected.
	for _, api := range tc.nodes {
		for _, c := range clients {
			r := api.post(t, "send_to_client", "s1", map[string]any{"clientId": c.id, "sendUserId": "u", "code": 5,
				"msg": "hi", "data": map[string]any{"from": api.idx}})
			var res sendResult
			r.decode(t, &res)
			if r.Code != 0 || res.MessageID == "" {
				t.Fatalf("node %d -> client on node %d: %s", api.idx, c.node.idx, r)
			}
			f := c.expect(t, res.MessageID)
			if f.Code != 5 || f.Msg != "hi" || string(f.Data) != fmt.Sprintf(`{"from":%d}`, api.idx) {
				t.Fatalf("frame %+v", f)
			}
			var on struct{ Online bool }
			api.post(t, "is_online", "s1", map[string]any{"clientId": c.id}).decode(t, &on)
			if !on.Online {
				t.Fatalf("is_online on node %d of a client on node %d: false", api.idx, c.node.idx)
			}
		}
	}
	// send_to_clients splits by node and merges the answers.
	bogus := forge("s1")
	r := tc.nodes[1].post(t, "send_to_clients", "s1", map[string]any{"clientIds": append(ids(clients...), bogus), "data": 1})
	var many sendResult
	r.decode(t, &many)
	if r.Code != 0 || many.Delivered != len(clients) || len(many.Offline) != 1 || many.Offline[0] != bogus {
		t.Fatalf("send_to_clients: %s", r)
	}
	for _, c := range clients {
		c.expect(t, many.MessageID)
	}
	// close_client through another node closes it with 1000.
	victim := clients[5] // on node 2
	if r := tc.nodes[0].post(t, "close_client", "s1", map[string]any{"clientId": victim.id}); r.Code != 0 {
		t.Fatalf("close_client: %s", r)
	}
	select {
	case <-victim.done:
	case <-time.After(5 * time.Second):
		t.Fatal("closed client still connected")
	}
	if victim.closeCode() != define.CloseNormal {
		t.Fatalf("close code %d, want 1000", victim.closeCode())
	}
	eventually(t, 5*time.Second, "closed client offline everywhere", func() bool {
		return tc.nodes[1].post(t, "send_to_client", "s1", map[string]any{"clientId": victim.id}).Code == define.CodeClientOffline
	})
}

func TestBroadcastAcrossNodes(t *testing.T) {
	tc := newCluster(t, defaults())
	tc.register(tc.nodes[0], "s1")
	tc.register(tc.nodes[1], "s2")
	var s1, s2, members []*wsClient
	for _, n := range tc.nodes {
		a, b := n.dial(t, "s1"), n.dial(t, "s1")
		s1 = append(s1, a, b)
		s2 = append(s2, n.dial(t, "s2"))
		members = append(members, a)
	}
	// Bind one client per node, each through another node; drain the events.
	for i, m := range members {
		api := tc.nodes[(i+1)%len(tc.nodes)]
		if r := api.post(t, "bind_to_group", "s1", map[string]any{"clientId": m.id, "groupName": "g"}); r.Code != 0 {
			t.Fatalf("bind: %s", r)
		}
		for _, o := range members[:i+1] {
			o.expectEvent(t, define.MsgCodeJoin, m, "g")
		}
	}
	r := tc.nodes[1].post(t, "send_to_group", "s1", map[string]any{"groupName": "g", "data": "to-g"})
	var g sendResult
	r.decode(t, &g)
	if r.Code != 0 || g.Recipients != len(members) || g.Unreachable != nil {
		t.Fatalf("send_to_group: %s", r)
	}
	for _, m := range members {
		m.expect(t, g.MessageID)
	}
	r = tc.nodes[2].post(t, "send_to_system", "s1", map[string]any{"data": "to-s1"})
	var s sendResult
	r.decode(t, &s)
	if r.Code != 0 || s.Recipients != len(s1) {
		t.Fatalf("send_to_system: %s", r)
	}
	for _, c := range s1 {
		c.expect(t, s.MessageID)
	}
	for _, c := range s2 {
		c.quiet(t, 20*time.Millisecond) // another system's clients get nothing
	}
	for _, tcase := range []struct {
		sys, group string
		want       []*wsClient
	}{{"s1", "", s1}, {"s1", "g", members}, {"s2", "", s2}, {"s2", "g", nil}} {
		for _, api := range tc.nodes {
			var l listResult
			r := api.post(t, "get_online_list", tcase.sys, map[string]any{"groupName": tcase.group})
			r.decode(t, &l)
			if r.Code != 0 || l.Count != len(tcase.want) || !sameSet(l.List, ids(tcase.want...)) || l.Unreachable != nil {
				t.Fatalf("get_online_list %s/%q on node %d: %s", tcase.sys, tcase.group, api.idx, r)
			}
		}
	}
}

func TestMembershipEventsAcrossNodes(t *testing.T) {
	tc := newCluster(t, defaults())
	tc.register(tc.nodes[0], "s1")
	a, b, c := tc.nodes[0].dial(t, "s1"), tc.nodes[1].dial(t, "s1"), tc.nodes[2].dial(t, "s1")
	bind := func(api *tnode, m *wsClient) {
		if r := api.post(t, "bind_to_group", "s1", map[string]any{"clientId": m.id, "groupName": "room", "userId": "u-" + m.id[:4]}); r.Code != 0 {
			t.Fatalf("bind: %s", r)
		}
	}
	bind(tc.nodes[2], a)
	a.expectEvent(t, define.MsgCodeJoin, a, "room")
	bind(tc.nodes[0], b)
	a.expectEvent(t, define.MsgCodeJoin, b, "room")
	b.expectEvent(t, define.MsgCodeJoin, b, "room")
	bind(tc.nodes[1], c)
	for _, m := range []*wsClient{a, b, c} {
		m.expectEvent(t, define.MsgCodeJoin, c, "room")
	}
	// Re-binding sends nothing.
	bind(tc.nodes[0], c)
	if r := tc.nodes[2].post(t, "unbind_from_group", "s1", map[string]any{"clientId": b.id, "groupName": "room"}); r.Code != 0 {
		t.Fatalf("unbind: %s", r)
	}
	a.expectEvent(t, define.MsgCodeLeave, b, "room")
	c.expectEvent(t, define.MsgCodeLeave, b, "room")
	// c disconnects: a, on another node, hears it exactly once.
	c.conn.Close()
	a.expectEvent(t, define.MsgCodeLeave, c, "room")
	a.quiet(t, 100*time.Millisecond)
	b.quiet(t, 10*time.Millisecond)
}

func TestForgedAndForeignIDs(t *testing.T) {
	tc := newCluster(t, config{nodes: 2, leaseTTL: 2, rpcTimeout: time.Second})
	tc.register(tc.nodes[0], "s1")
	tc.register(tc.nodes[0], "s2")
	real := tc.nodes[1].dial(t, "s1")
	cases := map[string]struct{ sys, id string }{
		"tampered":                 {"s1", tamper(real.id)},
		"another system's":         {"s2", real.id},
		"of a node that is gone":   {"s1", forge("s1")},
		"minted with other secret": {"s1", ident.NewMinter(tc.nodes[1].node.ID(), []byte("not the cluster secret")).Mint("s1")},
		"malformed":                {"s1", "not-an-id"},
	}
	for name, k := range cases {
		for _, api := range tc.nodes {
			for _, ep := range []string{"send_to_client", "close_client", "bind_to_group", "unbind_from_group"} {
				r := api.post(t, ep, k.sys, map[string]any{"clientId": k.id, "groupName": "g"})
				if r.Code != define.CodeClientOffline || r.Status != http.StatusNotFound {
					t.Errorf("%s id, %s on node %d: %s, want 10006/404", name, ep, api.idx, r)
				}
				if r.Took > 500*time.Millisecond {
					t.Errorf("%s id, %s on node %d took %v", name, ep, api.idx, r.Took)
				}
			}
			var on struct{ Online bool }
			r := api.post(t, "is_online", k.sys, map[string]any{"clientId": k.id})
			r.decode(t, &on)
			if r.Code != 0 || on.Online {
				t.Errorf("%s id, is_online on node %d: %s", name, api.idx, r)
			}
		}
	}
	real.quiet(t, 50*time.Millisecond)
}

func TestNodeKilledWithoutWarning(t *testing.T) {
	cfg := defaults()
	tc := newCluster(t, cfg)
	tc.register(tc.nodes[0], "s1")
	n0, n1, n2 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	c0, c1, c2 := n0.dial(t, "s1"), n1.dial(t, "s1"), n2.dial(t, "s1")
	for i, c := range []*wsClient{c0, c1, c2} {
		tc.nodes[i].post(t, "bind_to_group", "s1", map[string]any{"clientId": c.id, "groupName": "g"})
	}
	eventually(t, 5*time.Second, "join events delivered", func() bool { return c0.Pending() == 3 && c1.Pending() == 2 && c2.Pending() == 1 })
	for _, c := range []*wsClient{c0, c1, c2} {
		for c.Pending() > 0 {
			c.next(t, time.Second)
		}
	}

	killed := time.Now()
	n2.crash()
	limit := cfg.rpcTimeout + 250*time.Millisecond
	var mu sync.Mutex
	var noticed, dropped [2]time.Duration
	var wg sync.WaitGroup
	for i, n := range []*tnode{n0, n1} {
		wg.Add(1)
		go func() { // watch n's view of n2: the connection, then the table
			defer wg.Done()
			eventually(t, 5*time.Second, "connection loss noticed", func() bool { p, ok := n.peer(n2); return !ok || !p.Up })
			d1 := time.Since(killed)
			waitTable(t, n, time.Duration(cfg.leaseTTL)*time.Second+2*time.Second, "dead node dropped",
				func() bool { _, ok := n.peer(n2); return !ok })
			mu.Lock()
			noticed[i], dropped[i] = d1, time.Since(killed)
			mu.Unlock()
		}()
	}
	// Meanwhile the survivors keep answering, each call within the deadline.
	calls := 0
	var left [2]int // 1002 events about the dead node's client
	for round := 0; round < 10000; round++ {
		gone := true
		for _, n := range []*tnode{n0, n1} {
			if _, ok := n.peer(n2); ok {
				gone = false
			}
		}
		for _, api := range []*tnode{n0, n1} {
			r := api.post(t, "send_to_client", "s1", map[string]any{"clientId": c2.id})
			if r.Code != define.CodeUnavailable && r.Code != define.CodeClientOffline {
				t.Fatalf("send to the dead node's client: %s, want 10009 or 10006", r)
			}
			if r.Code == define.CodeUnavailable && r.Status != http.StatusServiceUnavailable {
				t.Fatalf("10009 with HTTP %d", r.Status)
			}
			g := api.post(t, "send_to_group", "s1", map[string]any{"groupName": "g", "data": round})
			var res sendResult
			g.decode(t, &res)
			if g.Code != 0 || res.Recipients != 2 {
				t.Fatalf("send_to_group on a survivor: %s", g)
			}
			if len(res.Unreachable) > 0 && (len(res.Unreachable) != 1 || res.Unreachable[0] != n2.id()) {
				t.Fatalf("unreachable %v, want [%s]", res.Unreachable, n2.id())
			}
			c0.expectSkipping(t, res.MessageID, c2, &left[0])
			c1.expectSkipping(t, res.MessageID, c2, &left[1])
			for _, x := range []*resp{r, g} {
				if x.Took > limit {
					t.Fatalf("a call on a survivor took %v (deadline %v): %s", x.Took, cfg.rpcTimeout, x)
				}
			}
			calls += 2
		}
		if gone {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("node killed: connection loss noticed after %v / %v, peer table dropped it after %v / %v (lease TTL %d s); %d API calls meanwhile, all within %v",
		noticed[0], noticed[1], dropped[0], dropped[1], cfg.leaseTTL, calls, limit)
	// Its client was announced as left to each survivor's member, once.
	for i, c := range []*wsClient{c0, c1} {
		if raw, err := c.Next(200 * time.Millisecond); err == nil {
			if f, _ := wstest.ParseFrame(raw); f.Code == 1002 {
				left[i]++
			} else {
				t.Fatalf("unexpected frame %s", raw)
			}
		}
		if left[i] != 1 {
			t.Fatalf("client on node %d got %d 1002 events about the dead node's client, want 1", i, left[i])
		}
	}
	// Once its lease expired: plain 10006, and no unreachable nodes.
	for _, api := range []*tnode{n0, n1} {
		if r := api.post(t, "send_to_client", "s1", map[string]any{"clientId": c2.id}); r.Code != define.CodeClientOffline {
			t.Fatalf("after the lease expired: %s, want 10006", r)
		}
		var l listResult
		api.post(t, "get_online_list", "s1", map[string]any{}).decode(t, &l)
		if l.Count != 2 || l.Unreachable != nil {
			t.Fatalf("online list after the node died: %+v", l)
		}
	}
}

func TestStalledPeerIsSkippedUntilItAnswers(t *testing.T) {
	cfg := defaults()
	tc := newCluster(t, cfg)
	tc.register(tc.nodes[0], "s1")
	n0, n2 := tc.nodes[0], tc.nodes[2]
	var all []*wsClient
	for _, n := range tc.nodes {
		all = append(all, n.dial(t, "s1"))
	}
	n2.local.stall()
	limit := cfg.rpcTimeout + 250*time.Millisecond
	r := n0.post(t, "send_to_system", "s1", map[string]any{"data": 1})
	var res sendResult
	r.decode(t, &res)
	if r.Code != 0 || res.Recipients != 2 || len(res.Unreachable) != 1 || res.Unreachable[0] != n2.id() {
		t.Fatalf("broadcast with a stalled peer: %s", r)
	}
	if r.Took < cfg.rpcTimeout-50*time.Millisecond || r.Took > limit {
		t.Fatalf("broadcast with a stalled peer took %v, want about the deadline %v", r.Took, cfg.rpcTimeout)
	}
	// From now on the stalled peer is skipped at once. Lists answer from
	// the presence index, with no call to any peer.
	for range 3 {
		r := n0.post(t, "get_online_list", "s1", map[string]any{})
		var l listResult
		r.decode(t, &l)
		if r.Code != 0 || l.Count != 3 || r.Took > 200*time.Millisecond {
			t.Fatalf("list with a down peer: %s", r)
		}
		u := n0.post(t, "send_to_client", "s1", map[string]any{"clientId": all[2].id})
		if u.Code != define.CodeUnavailable || u.Status != http.StatusServiceUnavailable || u.Took > 200*time.Millisecond {
			t.Fatalf("unicast to a down peer: %s, want 10009/503 at once", u)
		}
	}
	n2.local.unstall()
	// The operation that timed out was already in the stalled node's hands:
	// it completes late. "unreachable" means "not confirmed in time".
	all[2].expect(t, res.MessageID)
	waitTable(t, n0, 5*time.Second, "peer up again after it answers", func() bool { p, _ := n0.peer(n2); return p.Up })
	r = n0.post(t, "send_to_system", "s1", map[string]any{"data": 2})
	res = sendResult{}
	r.decode(t, &res)
	if r.Code != 0 || res.Recipients != 3 || res.Unreachable != nil {
		t.Fatalf("broadcast after recovery: %s", r)
	}
	all[2].expect(t, res.MessageID)
}

func TestEtcdOutage(t *testing.T) {
	cfg := defaults()
	tc := newCluster(t, cfg)
	tc.register(tc.nodes[0], "s1")
	var cs []*wsClient
	for _, n := range tc.nodes {
		cs = append(cs, n.dial(t, "s1"))
	}
	// sendAll sends to every client from every other node and checks delivery.
	sendAll := func(stage string) {
		t.Helper()
		for i, api := range tc.nodes {
			for _, c := range cs {
				if c.node == api {
					continue
				}
				r := api.post(t, "send_to_client", "s1", map[string]any{"clientId": c.id, "msg": stage})
				var res sendResult
				r.decode(t, &res)
				if r.Code != 0 {
					t.Fatalf("%s: send from node %d to node %d: %s", stage, i, c.node.idx, r)
				}
				c.expect(t, res.MessageID)
			}
			r := api.post(t, "send_to_system", "s1", map[string]any{"msg": stage})
			var res sendResult
			r.decode(t, &res)
			if r.Code != 0 || res.Recipients != len(cs) {
				t.Fatalf("%s: send_to_system: %s", stage, r)
			}
			for _, c := range cs {
				c.expect(t, res.MessageID)
			}
		}
	}
	tc.etcd.Stop()
	sendAll("etcd just stopped")
	r := tc.nodes[1].post(t, "register", "", map[string]any{"systemId": "during-outage"})
	if r.Code != define.CodeUnavailable || r.Status != http.StatusServiceUnavailable {
		t.Fatalf("register while etcd is down: %s, want 10009/503", r)
	}
	// Past the TTL every node has lost its lease: not ready, still delivering.
	for _, n := range tc.nodes {
		eventually(t, 10*time.Second, "lease loss noticed", func() bool { return n.cl.Ready() != nil })
		if s := n.get(t, "/readyz"); s != http.StatusServiceUnavailable {
			t.Fatalf("readyz without etcd: %d", s)
		}
	}
	sendAll("leases lost")
	late := tc.nodes[2].dial(t, "s1") // connects still work: systems are cached
	cs = append(cs, late)
	if r := tc.nodes[0].post(t, "send_to_client", "s1", map[string]any{"clientId": late.id}); r.Code != 0 {
		t.Fatalf("send to a client that connected during the outage: %s", r)
	}
	late.next(t, 5*time.Second)

	restarted := time.Now()
	tc.etcd.Restart()
	for _, n := range tc.nodes {
		eventually(t, 15*time.Second, "registered again", func() bool { return n.get(t, "/readyz") == http.StatusOK })
	}
	tc.waitConverged(10 * time.Second)
	t.Logf("cluster converged %v after etcd came back", time.Since(restarted))
	eventually(t, 10*time.Second, "register works again", func() bool {
		return tc.nodes[1].post(t, "register", "", map[string]any{"systemId": "after-outage"}).Code == 0
	})
	sendAll("after the outage")
}

func TestConcurrentRegisterOnTwoNodes(t *testing.T) {
	tc := newCluster(t, config{nodes: 2, leaseTTL: 2, rpcTimeout: time.Second})
	for round := range 10 {
		id := fmt.Sprintf("tenant-%d", round)
		codes := make([]*resp, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, n := range tc.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := n.tryPost("register", "", map[string]any{"systemId": id})
				if err != nil {
					t.Error(err)
					return
				}
				codes[i] = r
			}()
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		got := []int{codes[0].Code, codes[1].Code}
		sort.Ints(got)
		if got[0] != 0 || got[1] != define.CodeSystemExists {
			t.Fatalf("round %d: codes %v (%s / %s), want one 0 and one 10004", round, got, codes[0], codes[1])
		}
		for _, r := range codes {
			if r.Code == define.CodeSystemExists && r.Status != http.StatusConflict {
				t.Fatalf("10004 with HTTP %d", r.Status)
			}
		}
	}
}

func TestGracefulLeave(t *testing.T) {
	tc := newCluster(t, defaults())
	tc.register(tc.nodes[0], "s1")
	n0, n2 := tc.nodes[0], tc.nodes[2]
	a, gone := n0.dial(t, "s1"), n2.dial(t, "s1")
	for _, c := range []*wsClient{a, gone} {
		n0.post(t, "bind_to_group", "s1", map[string]any{"clientId": c.id, "groupName": "g"})
	}
	a.expectEvent(t, define.MsgCodeJoin, a, "g")
	a.expectEvent(t, define.MsgCodeJoin, gone, "g")
	gone.expectEvent(t, define.MsgCodeJoin, gone, "g")

	start := time.Now()
	n2.cl.Leave(context.Background())
	if s := n2.get(t, "/readyz"); s != http.StatusServiceUnavailable {
		t.Fatalf("readyz after Leave: %d", s)
	}
	for _, n := range tc.nodes[:2] {
		waitTable(t, n, time.Second, "peers forget a leaving node at once", func() bool { _, ok := n.peer(n2); return !ok })
	}
	t.Logf("peers forgot the leaving node after %v", time.Since(start))
	// Draining: its client gets 1001, and the group on node 0 hears the leave.
	n2.node.Shutdown(time.Now().Add(2 * time.Second))
	select {
	case <-gone.done:
	case <-time.After(5 * time.Second):
		t.Fatal("client of the draining node not closed")
	}
	if gone.closeCode() != define.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", gone.closeCode())
	}
	a.expectEvent(t, define.MsgCodeLeave, gone, "g")
	if r := n0.post(t, "send_to_client", "s1", map[string]any{"clientId": gone.id}); r.Code != define.CodeClientOffline {
		t.Fatalf("send to a client of a node that left: %s", r)
	}
}

func TestMetrics(t *testing.T) {
	tc := newCluster(t, config{nodes: 2, leaseTTL: 2, rpcTimeout: time.Second})
	tc.register(tc.nodes[0], "s1")
	c := tc.nodes[1].dial(t, "s1")
	tc.nodes[0].post(t, "send_to_client", "s1", map[string]any{"clientId": c.id})
	tc.nodes[0].post(t, "send_to_system", "s1", map[string]any{})
	hr, err := tc.nodes[0].hc.Get(tc.nodes[0].srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Body.Close()
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(body), "\n")
	for _, want := range []string{
		`gows_rpc_calls_total{method="unicast",outcome="ok"} 1`,
		`gows_rpc_calls_total{method="broadcast",outcome="ok"} 1`,
		`gows_rpc_duration_seconds_count{method="unicast"} 1`,
		"gows_cluster_peers 1",
		"gows_etcd_session_up 1",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestCrossNodeLatency measures a cross-node send_to_client on loopback:
// the API round trip (backend -> node 0 -> RPC -> node 1 -> answer) and the
// delivery (API call start -> frame read by the client on node 1), against
// the same call made on the client's own node.
func TestCrossNodeLatency(t *testing.T) {
	tc := newCluster(t, config{nodes: 2, leaseTTL: 2, rpcTimeout: time.Second})
	tc.register(tc.nodes[0], "s1")
	c := tc.nodes[1].dial(t, "s1")
	const n = 1000
	measure := func(api *tnode) (apiLat, delivery []time.Duration) {
		for i := range n + 50 {
			start := time.Now()
			r, err := api.tryPost("send_to_client", "s1", map[string]any{"clientId": c.id, "data": i})
			if err != nil || r.Code != 0 {
				t.Fatalf("send: %v %v", r, err)
			}
			took := time.Since(start)
			c.next(t, 5*time.Second)
			if i >= 50 { // warm-up excluded
				apiLat = append(apiLat, took)
				delivery = append(delivery, time.Since(start))
			}
		}
		return apiLat, delivery
	}
	crossAPI, crossDel := measure(tc.nodes[0])
	localAPI, localDel := measure(tc.nodes[1])
	t.Logf("send_to_client over %d calls (p50 / p99): cross-node API %v / %v, delivery %v / %v; same-node API %v / %v, delivery %v / %v",
		n, pct(crossAPI, 50), pct(crossAPI, 99), pct(crossDel, 50), pct(crossDel, 99),
		pct(localAPI, 50), pct(localAPI, 99), pct(localDel, 50), pct(localDel, 99))
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(time.Microsecond)
}

// BenchmarkCrossNodeSendToClient is Node.SendToClient from node 0 to a
// client on node 1 (one RPC per op), without HTTP.
func BenchmarkCrossNodeSendToClient(b *testing.B) {
	tc := newCluster(b, config{nodes: 2, leaseTTL: 2, rpcTimeout: time.Second})
	tc.register(tc.nodes[0], "s1")
	c := tc.nodes[1].dial(b, "s1")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // drain, so that the client never backs up
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Next(100 * time.Millisecond); err != nil && !errors.Is(err, wstest.ErrNoFrame) {
				return
			}
		}
	}()
	msg := &define.Message{Data: []byte(`"x"`)}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tc.nodes[0].node.SendToClient(ctx, "s1", c.id, msg); err != nil {
			b.Fatal(err)
		}
	}
}
