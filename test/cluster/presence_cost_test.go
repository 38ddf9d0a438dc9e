package clustertest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// rpcCalls sums gows_rpc_calls_total of n by method.
func rpcCalls(t testing.TB, n *tnode, method string) float64 {
	t.Helper()
	mfs, err := n.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "gows_rpc_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "method", method) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// settledWrites waits until the presence writers are idle (no write for
// 100 ms, at most 5 s) and returns their total writes.
func settledWrites(tc *testCluster) float64 {
	last, since := -1.0, time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		w := 0.0
		for _, n := range tc.nodes {
			w += float64(n.cl.PresenceStats().Writes)
		}
		if w != last {
			last, since = w, time.Now()
		} else if time.Since(since) > 100*time.Millisecond {
			break
		}
	}
	return last
}

// TestPresenceCost measures the presence index on a cluster of three nodes:
// etcd writes per connect and bind, RPCs per send_to_group in rooms of 10
// spread at random over the nodes, and get_online_list latency. Set
// WSTEST_PRESENCE_CLIENTS for a bigger run (default 300 clients).
func TestPresenceCost(t *testing.T) {
	clients := 300
	if v, err := strconv.Atoi(os.Getenv("WSTEST_PRESENCE_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	tc := newCluster(t, defaults())
	tc.register(tc.nodes[0], "s1")
	time.Sleep(2100 * time.Millisecond) // past every node's young window
	writes0 := 0.0
	for _, n := range tc.nodes {
		writes0 += float64(n.cl.PresenceStats().Writes)
	}
	type member struct {
		n  *tnode
		id string
		c  *wsClient
	}
	var ms []member
	for i := range clients {
		n := tc.nodes[rand.IntN(len(tc.nodes))]
		c := n.dial(t, "s1")
		ms = append(ms, member{n, c.id, c})
		_ = i
	}
	connectWrites := settledWrites(tc) - writes0
	rooms := clients / 10
	start := time.Now()
	for i, m := range ms {
		api := tc.nodes[i%len(tc.nodes)]
		if r := api.post(t, "bind_to_group", "s1", map[string]any{"clientId": m.id, "groupName": fmt.Sprintf("room-%d", i%rooms)}); r.Code != 0 {
			t.Fatalf("bind: %s", r)
		}
	}
	bindTook := time.Since(start)
	bindWrites := settledWrites(tc) - writes0 - connectWrites
	var txns uint64
	for _, n := range tc.nodes {
		txns += n.cl.PresenceStats().Txns
	}
	before := 0.0
	for _, n := range tc.nodes {
		before += rpcCalls(t, n, "broadcast")
	}
	sends := 0
	for i := range rooms * 3 {
		api := tc.nodes[i%len(tc.nodes)]
		if r := api.post(t, "send_to_group", "s1", map[string]any{"groupName": fmt.Sprintf("room-%d", i%rooms), "data": i}); r.Code != 0 {
			t.Fatalf("send: %s", r)
		}
		sends++
	}
	after := 0.0
	for _, n := range tc.nodes {
		after += rpcCalls(t, n, "broadcast")
	}
	var lat []time.Duration
	for i := range 1000 {
		api := tc.nodes[i%len(tc.nodes)]
		r := api.post(t, "get_online_list", "s1", map[string]any{"groupName": fmt.Sprintf("room-%d", i%rooms)})
		if r.Code != 0 {
			t.Fatalf("list: %s", r)
		}
		lat = append(lat, r.Took)
	}
	slices.Sort(lat)
	rpcPerSend := (after - before) / float64(sends)
	beforeDisc := settledWrites(tc)
	for _, m := range ms {
		m.c.conn.Close()
		<-m.c.done
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		gone := true
		for _, n := range tc.nodes {
			if r := n.post(t, "get_online_list", "s1", map[string]any{}); r.Code != 0 || !strings.Contains(string(r.Data), `"count":0`) {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lists still show clients 10 s after they all disconnected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	discWrites := (settledWrites(tc) - beforeDisc) / float64(clients)
	var allWrites, allBytes uint64
	for _, n := range tc.nodes {
		st := n.cl.PresenceStats()
		allWrites += st.Writes
		allBytes += st.Bytes
	}
	t.Logf("3 nodes, %d clients in %d rooms of 10: etcd writes per connect %.2f, per bind %.2f, per disconnect %.2f (%d transactions for %d connects and binds, binds took %v); %.0f bytes per write; RPCs per send_to_group %.2f (all-nodes fan-out: 2); get_online_list p50 %v p99 %v (over HTTP, in-process)",
		clients, rooms, connectWrites/float64(clients), bindWrites/float64(clients), discWrites, txns, 2*clients, bindTook.Round(time.Millisecond),
		float64(allBytes)/float64(max(allWrites, 1)), rpcPerSend, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))
	if rpcPerSend > 2 {
		t.Fatalf("%.2f RPCs per send_to_group, want at most the number of other nodes holding members", rpcPerSend)
	}
	if discWrites > 1.01 {
		t.Fatalf("%.2f etcd writes per disconnect, want at most 1", discWrites)
	}
	if bindWrites/float64(clients) > 1.01 {
		t.Fatalf("%.2f etcd writes per bind, want at most 1", bindWrites/float64(clients))
	}
}

// TestUserLookupsFromPresence: get_user_clients answers from the presence
// index with no RPC; send_to_user calls only the nodes holding the user's
// clients.
func TestUserLookupsFromPresence(t *testing.T) {
	tc := newCluster(t, defaults())
	tc.register(tc.nodes[0], "s1")
	time.Sleep(2100 * time.Millisecond) // past every node's young window
	n0, n1, n2 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	a, b := n0.dial(t, "s1"), n2.dial(t, "s1")
	for _, c := range []*wsClient{a, b} {
		if r := n1.post(t, "bind_to_user", "s1", map[string]any{"clientId": c.id, "userId": "u1"}); r.Code != 0 {
			t.Fatalf("bind_to_user: %s", r)
		}
	}
	for _, n := range tc.nodes {
		before := rpcCalls(t, n, "broadcast")
		r := n.post(t, "get_user_clients", "s1", map[string]any{"userId": "u1"})
		var l listResult
		r.decode(t, &l)
		if r.Code != 0 || l.Count != 2 {
			t.Fatalf("get_user_clients through node %d: %s", n.idx, r)
		}
		if d := rpcCalls(t, n, "broadcast") - before; d != 0 {
			t.Fatalf("get_user_clients through node %d made %v RPCs, want 0", n.idx, d)
		}
	}
	before := rpcCalls(t, n0, "broadcast")
	r := n0.post(t, "send_to_user", "s1", map[string]any{"userId": "u1", "data": "hi"})
	var res sendResult
	r.decode(t, &res)
	if r.Code != 0 || res.Recipients != 2 {
		t.Fatalf("send_to_user: %s", r)
	}
	if d := rpcCalls(t, n0, "broadcast") - before; d != 1 {
		t.Fatalf("send_to_user to clients on nodes 0 and 2 made %v RPCs from node 0, want 1", d)
	}
	a.expect(t, res.MessageID)
	b.expect(t, res.MessageID)
}
