package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// counter drains a client's frames and records every messageId and every
// 1002 event (by the clientId it is about).
type counter struct {
	cl   *client
	mu   sync.Mutex
	got  map[string]bool
	left map[string]int
	stop chan struct{}
	done chan struct{}
}

func count(cl *client) *counter {
	k := &counter{cl: cl, got: map[string]bool{}, left: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		for {
			select {
			case f := <-cl.frames:
				k.mu.Lock()
				if f.Code == 1002 {
					var ev struct {
						ClientID string `json:"clientId"`
					}
					_ = json.Unmarshal(f.Data, &ev)
					k.left[ev.ClientID]++
				} else if f.MessageID != "" {
					k.got[f.MessageID] = true
				}
				k.mu.Unlock()
			case <-k.stop:
				return
			}
		}
	}()
	cl.c.t.Cleanup(k.close)
	return k
}

func (k *counter) close() {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	<-k.done
}

func (k *counter) has(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.got[id]
}

func (k *counter) leftCount(id string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.left[id]
}

// traffic sends sequence-numbered group and unicast messages through the
// nodes in turn and records, per client, every message the API reported
// as handed over to it.
type traffic struct {
	c       *cluster
	system  string
	group   string
	members []*counter
	via     []*nodeProc

	mu       sync.Mutex
	expected map[*counter][]string
	sent     int
	errs     int
}

func (tr *traffic) round(seq int) {
	n := tr.via[seq%len(tr.via)]
	base := n.url + apiPrefix
	r, err := tr.c.tryPost(base, "send_to_group", tr.system, map[string]any{"groupName": tr.group, "data": seq})
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.sent++
	if err != nil || r.Code != 0 {
		tr.errs++
		return
	}
	var res sendResult
	_ = json.Unmarshal(r.Data, &res)
	unreachable := map[string]bool{}
	for _, u := range res.Unreachable {
		unreachable[u] = true
	}
	for _, k := range tr.members {
		if !unreachable[nodeOf(tr.c.t, k.cl.currentID())] {
			tr.expected[k] = append(tr.expected[k], res.MessageID)
		}
	}
	k := tr.members[seq%len(tr.members)]
	tr.mu.Unlock()
	u, err := tr.c.tryPost(base, "send_to_client", tr.system, map[string]any{"clientId": k.cl.currentID(), "data": seq})
	tr.mu.Lock()
	tr.sent++
	if err != nil || u.Code != 0 {
		tr.errs++
		return
	}
	var ur sendResult
	_ = json.Unmarshal(u.Data, &ur)
	tr.expected[k] = append(tr.expected[k], ur.MessageID)
}

// lost waits a moment for the last frames and returns how many expected
// deliveries never arrived.
func (tr *traffic) lost(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		missing := 0
		tr.mu.Lock()
		for k, ids := range tr.expected {
			for _, id := range ids {
				if !k.has(id) {
					missing++
				}
			}
		}
		tr.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// groupSetup registers a system and binds three clients per node, each
// connected straight to its node, to one group.
func groupSetup(c *cluster, system, group string, perNode int) ([]*counter, [][]*counter) {
	c.t.Helper()
	c.register(system)
	var all []*counter
	byNode := make([][]*counter, len(c.nodes))
	for _, n := range c.nodes {
		for range perNode {
			cl := c.dialNode(n, system)
			r := c.post("bind_to_group", system, map[string]any{"clientId": cl.currentID(), "groupName": group})
			if r.Code != 0 {
				c.t.Fatalf("bind: %s", r)
			}
			k := count(cl)
			all = append(all, k)
			byNode[n.idx] = append(byNode[n.idx], k)
		}
	}
	return all, byNode
}

// etcdOutage stops etcd for d while traffic flows, and checks that nothing
// is lost and that every node is ready again within a second of etcd's
// return.
func etcdOutage(t *testing.T, d time.Duration) {
	c := newCluster(t, 3)
	all, _ := groupSetup(c, "app", "room", 3)
	tr := &traffic{c: c, system: "app", group: "room", members: all, via: c.nodes, expected: map[*counter][]string{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := 0; seq < 100000; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			tr.round(seq)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	c.etcd.kill9()
	time.Sleep(d)
	c.etcd.restart()
	back := time.Now()
	var readyAfter time.Duration
	for _, n := range c.nodes {
		for !c.waitReady(n, 50*time.Millisecond) {
			if time.Since(back) > 15*time.Second {
				t.Fatalf("node %d not ready 15 s after etcd's return:\n%s", n.idx, n.logTail(3000))
			}
		}
	}
	readyAfter = time.Since(back)
	var registerAfter time.Duration
	for i := 0; ; i++ {
		r, err := c.tryPost(c.nodes[i%3].url+apiPrefix, "register", "", map[string]any{"systemId": fmt.Sprintf("after-%d", i)})
		if err == nil && r.Code == 0 {
			registerAfter = time.Since(back)
			break
		}
		if time.Since(back) > 15*time.Second {
			t.Fatalf("register still failing 15 s after etcd's return: %v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // traffic after the return, leases settled
	close(stop)
	wg.Wait()
	lost := tr.lost(t)
	t.Logf("etcd down %v: %d API calls (%d refused), %d deliveries lost; every node ready %v and register working %v after etcd's return",
		d, tr.sent, tr.errs, lost, readyAfter.Round(time.Millisecond), registerAfter.Round(time.Millisecond))
	if lost != 0 {
		t.Fatalf("%d deliveries reported as handed over were lost", lost)
	}
	if tr.errs != 0 {
		t.Fatalf("%d sends failed during or after the outage", tr.errs)
	}
	if readyAfter > time.Second || registerAfter > time.Second {
		t.Fatalf("ready after %v, register after %v: want both within 1 s of etcd's return", readyAfter, registerAfter)
	}
	for _, k := range all {
		if codes := k.cl.closeCodes(); len(codes) != 0 {
			t.Fatalf("client %s was closed (%v) although every node stayed up", k.cl.currentID(), codes)
		}
	}
}

func TestEtcdDown5sLosesNothing(t *testing.T)  { etcdOutage(t, 5*time.Second) }
func TestEtcdDown30sLosesNothing(t *testing.T) { etcdOutage(t, 30*time.Second) }

// TestEtcdDown90sLosesNothing is long; it runs when WSTEST_LONG is set.
func TestEtcdDown90sLosesNothing(t *testing.T) {
	if os.Getenv("WSTEST_LONG") == "" {
		t.Skip("set WSTEST_LONG=1 to run the 90 s etcd outage")
	}
	etcdOutage(t, 90*time.Second)
}

// TestHungNodeClosesItsClientsWith1012 stops a node (SIGSTOP) for twice its
// lease: the others declare it gone and announce its clients with 1002,
// once; on SIGCONT it closes its clients with 1012; nothing sent to the
// healthy nodes' clients is lost.
func TestHungNodeClosesItsClientsWith1012(t *testing.T) {
	c := newCluster(t, 3)
	_, byNode := groupSetup(c, "app", "room", 3)
	healthy := append(append([]*counter{}, byNode[0]...), byNode[1]...)
	tr := &traffic{c: c, system: "app", group: "room", members: healthy, via: c.nodes[:2], expected: map[*counter][]string{}}
	hung := c.nodes[2]
	if err := hung.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for seq := 0; time.Since(stopped) < 4*time.Second; seq++ {
		tr.round(seq)
		time.Sleep(50 * time.Millisecond)
	}
	if err := hung.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for _, k := range byNode[2] {
		deadline := time.Now().Add(5 * time.Second)
		for len(k.cl.closeCodes()) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if codes := k.cl.closeCodes(); len(codes) != 1 || codes[0] != 1012 {
			t.Fatalf("client of the hung node: close codes %v, want [1012]", codes)
		}
	}
	for seq := 0; seq < 20; seq++ {
		tr.round(seq)
	}
	// Through the node that came back: the healthy peers are not skipped.
	for seq := 0; seq < 20; seq++ {
		r, err := c.tryPost(hung.url+apiPrefix, "send_to_group", "app", map[string]any{"groupName": "room", "data": seq})
		if err != nil || r.Code != 0 {
			t.Fatalf("send through the node that came back: %v %v", r, err)
		}
		var res sendResult
		r.decode(t, &res)
		if len(res.Unreachable) != 0 || res.Recipients != len(healthy) {
			t.Fatalf("send through the node that came back: %s, want %d recipients and no unreachable node", r, len(healthy))
		}
	}
	if lost := tr.lost(t); lost != 0 || tr.errs != 0 {
		t.Fatalf("healthy clients: %d deliveries lost, %d sends failed", lost, tr.errs)
	}
	for _, k := range healthy {
		for _, gone := range byNode[2] {
			if n := k.leftCount(gone.cl.currentID()); n != 1 {
				t.Fatalf("member %s got %d 1002 events about %s, want 1", k.cl.currentID(), n, gone.cl.currentID())
			}
		}
	}
}

// TestKill9AnnouncesEachClientOnce kills a node whose clients share a group
// with clients of the two others: every surviving member gets one 1002 per
// lost client within the lease TTL + 1 s, and the lists are exact.
func TestKill9AnnouncesEachClientOnce(t *testing.T) {
	c := newCluster(t, 3)
	_, byNode := groupSetup(c, "app", "room", 3)
	killed := time.Now()
	c.nodes[2].kill9()
	const ttl = 2 * time.Second
	survivors := append(append([]*counter{}, byNode[0]...), byNode[1]...)
	for _, k := range survivors {
		for _, gone := range byNode[2] {
			for k.leftCount(gone.cl.currentID()) == 0 {
				if time.Since(killed) > ttl+time.Second {
					t.Fatalf("no 1002 about %s within TTL + 1 s", gone.cl.currentID())
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	t.Logf("every survivor got its 1002 events %v after kill -9 (lease TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	time.Sleep(500 * time.Millisecond)
	for _, k := range survivors {
		for _, gone := range byNode[2] {
			if n := k.leftCount(gone.cl.currentID()); n != 1 {
				t.Fatalf("member got %d 1002 events about %s, want 1", n, gone.cl.currentID())
			}
		}
	}
	for _, n := range c.nodes[:2] {
		r, err := c.tryPost(n.url+apiPrefix, "get_online_list", "app", map[string]any{"groupName": "room"})
		if err != nil {
			t.Fatal(err)
		}
		var l listResult
		r.decode(t, &l)
		if l.Count != len(survivors) {
			t.Fatalf("node %d lists %d members after the kill, want %d", n.idx, l.Count, len(survivors))
		}
	}
}

// TestRegisterOnOneNodeUseOnAnother registers on one node and uses the
// system on another at once, 100 times.
func TestRegisterOnOneNodeUseOnAnother(t *testing.T) {
	c := newCluster(t, 3)
	errs := 0
	for i := range 100 {
		id := fmt.Sprintf("sys-%d", i)
		reg, use := c.nodes[i%3], c.nodes[(i+1)%3]
		if r, err := c.tryPost(reg.url+apiPrefix, "register", "", map[string]any{"systemId": id}); err != nil || r.Code != 0 {
			t.Fatalf("register: %v %v", r, err)
		}
		r, err := c.tryPost(use.url+apiPrefix, "get_online_list", id, map[string]any{})
		if err != nil || r.Code != 0 {
			errs++
		}
	}
	if errs != 0 {
		t.Fatalf("%d of 100 calls right after register on another node failed", errs)
	}
}

var rpcCallsRe = regexp.MustCompile(`(?m)^gows_rpc_calls_total\{[^}]*\} (\d+)`)

func (c *cluster) rpcCalls(n *nodeProc) int {
	_, body := c.status(n.url + "/metrics")
	total := 0
	for _, m := range rpcCallsRe.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.Atoi(m[1])
		total += v
	}
	return total
}

// TestLocalGroupMakesNoRPC: a send to a group whose members are all on the
// calling node calls no other node; a group spread over two nodes calls
// one.
func TestLocalGroupMakesNoRPC(t *testing.T) {
	c := newCluster(t, 3)
	c.register("app")
	n0 := c.nodes[0]
	var ks []*counter
	for range 2 {
		cl := c.dialNode(n0, "app")
		if r, err := c.tryPost(n0.url+apiPrefix, "bind_to_group", "app", map[string]any{"clientId": cl.currentID(), "groupName": "local"}); err != nil || r.Code != 0 {
			t.Fatalf("bind: %v %v", r, err)
		}
		ks = append(ks, count(cl))
	}
	time.Sleep(2500 * time.Millisecond) // past the young-node window of every node
	before := c.rpcCalls(n0)
	var sent []string
	for i := range 10 {
		r, err := c.tryPost(n0.url+apiPrefix, "send_to_group", "app", map[string]any{"groupName": "local", "data": i})
		if err != nil || r.Code != 0 {
			t.Fatalf("send: %v %v", r, err)
		}
		var res sendResult
		r.decode(t, &res)
		if res.Recipients != 2 {
			t.Fatalf("recipients %d, want 2", res.Recipients)
		}
		sent = append(sent, res.MessageID)
	}
	for _, k := range ks {
		for _, id := range sent {
			deadline := time.Now().Add(5 * time.Second)
			for !k.has(id) {
				if time.Now().After(deadline) {
					t.Fatalf("member %s did not receive %s", k.cl.currentID(), id)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	if after := c.rpcCalls(n0); after != before {
		t.Fatalf("gows_rpc_calls_total went from %d to %d for sends to a local group", before, after)
	}
	other := c.dialNode(c.nodes[1], "app")
	if r, err := c.tryPost(n0.url+apiPrefix, "bind_to_group", "app", map[string]any{"clientId": other.currentID(), "groupName": "local"}); err != nil || r.Code != 0 {
		t.Fatalf("bind: %v %v", r, err)
	}
	before = c.rpcCalls(n0)
	r, _ := c.tryPost(n0.url+apiPrefix, "send_to_group", "app", map[string]any{"groupName": "local", "data": "x"})
	var res sendResult
	r.decode(t, &res)
	if res.Recipients != 3 {
		t.Fatalf("recipients %d, want 3", res.Recipients)
	}
	if d := c.rpcCalls(n0) - before; d != 1 {
		t.Fatalf("a group on two nodes cost %d RPCs, want 1", d)
	}
}

// TestBindThenSendThroughAnotherNode: a member bound (through one node)
// before send_to_group is called (through another) receives the message.
func TestBindThenSendThroughAnotherNode(t *testing.T) {
	c := newCluster(t, 3)
	c.register("app")
	time.Sleep(2500 * time.Millisecond)
	cl := c.dialNode(c.nodes[2], "app")
	k := count(cl)
	for i := range 50 {
		g := fmt.Sprintf("g%d", i)
		if r, err := c.tryPost(c.nodes[0].url+apiPrefix, "bind_to_group", "app", map[string]any{"clientId": cl.currentID(), "groupName": g}); err != nil || r.Code != 0 {
			t.Fatalf("bind: %v %v", r, err)
		}
		r, err := c.tryPost(c.nodes[1].url+apiPrefix, "send_to_group", "app", map[string]any{"groupName": g, "data": i})
		if err != nil || r.Code != 0 {
			t.Fatalf("send: %v %v", r, err)
		}
		var res sendResult
		r.decode(t, &res)
		if res.Recipients != 1 {
			t.Fatalf("round %d: recipients %d, want 1 (bind before send through another node)", i, res.Recipients)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !k.has(res.MessageID) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: message not received", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestColdStartNo10006AfterReady starts three nodes at once; as soon as two
// of them answer /readyz 200, clients connected to one are bound through
// the other: none may get 10006.
func TestColdStartNo10006AfterReady(t *testing.T) {
	requireTools(t)
	c := &cluster{t: t, etcd: startEtcd(t), prefix: "/e2e-" + randHex(4), secret: randHex(16),
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	t.Cleanup(c.hc.CloseIdleConnections)
	// The system exists before the nodes start.
	cli := c.etcd.client()
	if _, err := cli.Put(t.Context(), c.prefix+"/systems/app", `{"systemId":"app"}`); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	for i := range 3 {
		c.nodes = append(c.nodes, c.launchNode(i))
	}
	ready := make([]bool, 3)
	start := time.Now()
	binds, offline := 0, 0
	for time.Since(start) < 20*time.Second && binds < 300 {
		var up []*nodeProc
		for i, n := range c.nodes {
			if !ready[i] {
				if s, _ := c.status(n.url + "/readyz"); s == http.StatusOK {
					ready[i] = true
				}
			}
			if ready[i] {
				up = append(up, n)
			}
		}
		if len(up) < 2 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		for i := range up {
			owner, via := up[i], up[(i+1)%len(up)]
			cl := c.dialNode(owner, "app")
			r, err := c.tryPost(via.url+apiPrefix, "bind_to_group", "app", map[string]any{"clientId": cl.currentID(), "groupName": "g"})
			if err != nil {
				t.Fatal(err)
			}
			binds++
			if r.Code == codeClientOffline {
				offline++
			} else if r.Code != 0 {
				t.Fatalf("bind through node %d of a client of node %d: %s", via.idx, owner.idx, r)
			}
			cl.close()
		}
	}
	t.Logf("%d binds through another node right after /readyz 200, %d answered 10006", binds, offline)
	if binds < 30 {
		t.Fatalf("only %d binds in 20 s", binds)
	}
	if offline != 0 {
		t.Fatalf("%d of %d binds of online clients answered 10006", offline, binds)
	}
}

// TestBindsDuringEtcdOutage binds clients while etcd is down (before and
// after the leases expire): group sends through other nodes reach them,
// and once etcd is back every node's lists are exact.
func TestBindsDuringEtcdOutage(t *testing.T) {
	c := newCluster(t, 3)
	c.register("app")
	time.Sleep(2100 * time.Millisecond) // past every node's young window
	c.etcd.kill9()
	down := time.Now()
	var members []*counter
	bindAndSend := func(round int) {
		t.Helper()
		group := fmt.Sprintf("late-%d", round)
		var ks []*counter
		for i, n := range c.nodes {
			cl := c.dialNode(n, "app")
			via := c.nodes[(i+1)%3]
			if r, err := c.tryPost(via.url+apiPrefix, "bind_to_group", "app", map[string]any{"clientId": cl.currentID(), "groupName": group}); err != nil || r.Code != 0 {
				t.Fatalf("bind while etcd is down: %v %v", r, err)
			}
			ks = append(ks, count(cl))
		}
		members = append(members, ks...)
		for i, n := range c.nodes {
			r, err := c.tryPost(n.url+apiPrefix, "send_to_group", "app", map[string]any{"groupName": group, "data": i})
			if err != nil || r.Code != 0 {
				t.Fatalf("send while etcd is down: %v %v", r, err)
			}
			var res sendResult
			r.decode(t, &res)
			if res.Recipients != 3 || len(res.Unreachable) != 0 {
				t.Fatalf("round %d, send through node %d %v after etcd went down: %s, want 3 recipients", round, i, time.Since(down).Round(time.Millisecond), r)
			}
			for _, k := range ks {
				deadline := time.Now().Add(5 * time.Second)
				for !k.has(res.MessageID) {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: a member bound while etcd was down missed a group message", round)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		}
	}
	bindAndSend(0) // leases still alive
	time.Sleep(4 * time.Second)
	bindAndSend(1) // leases expired
	time.Sleep(25 * time.Second)
	bindAndSend(2)
	c.etcd.restart()
	for _, n := range c.nodes {
		if !c.waitReady(n, 5*time.Second) {
			t.Fatalf("node %d not ready after etcd's return", n.idx)
		}
	}
	// Lists converge: every node lists the 9 clients, by group too.
	want := map[string]bool{}
	for _, k := range members {
		want[k.cl.currentID()] = true
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range c.nodes {
		for {
			r, err := c.tryPost(n.url+apiPrefix, "get_online_list", "app", map[string]any{})
			if err != nil {
				t.Fatal(err)
			}
			var l listResult
			r.decode(t, &l)
			exact := l.Count == len(want)
			for _, id := range l.List {
				exact = exact && want[id]
			}
			if exact {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d lists %d clients after etcd's return, want exactly the %d online", n.idx, l.Count, len(want))
			}
			time.Sleep(20 * time.Millisecond)
		}
		for round := range 3 {
			r, _ := c.tryPost(n.url+apiPrefix, "get_online_list", "app", map[string]any{"groupName": fmt.Sprintf("late-%d", round)})
			var l listResult
			r.decode(t, &l)
			if l.Count != 3 {
				t.Fatalf("node %d lists %d members of late-%d, want 3", n.idx, l.Count, round)
			}
		}
	}
}
