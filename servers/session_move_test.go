package servers

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/store"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// loopRemote joins nodes of one process as a cluster: every call is
// encoded and decoded with gob, as net/rpc does between processes, and run
// on the other node.
type loopRemote struct {
	self  ident.NodeID
	mu    sync.Mutex
	nodes map[ident.NodeID]*Node
}

func roundTrip[T any](t testing.TB, v *T) *T {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatalf("gob encode: %v", err)
	}
	out := new(T)
	if err := gob.NewDecoder(&buf).Decode(out); err != nil {
		t.Fatalf("gob decode: %v", err)
	}
	return out
}

type cluster2 struct {
	t       *testing.T
	nodes   [2]*Node
	srvs    [2]*httptest.Server
	remotes [2]*loopRemote
}

func (l *loopRemote) Unicast(_ context.Context, node ident.NodeID, op *UnicastOp) (*UnicastReply, error) {
	l.mu.Lock()
	n := l.nodes[node]
	l.mu.Unlock()
	if n == nil {
		return nil, define.ErrClientOffline
	}
	return n.LocalUnicast(op), nil
}

func (l *loopRemote) Broadcast(_ context.Context, op *BroadcastOp) ([]*BroadcastReply, []string) {
	l.mu.Lock()
	var others []*Node
	for id, n := range l.nodes {
		if id != l.self {
			others = append(others, n)
		}
	}
	l.mu.Unlock()
	var out []*BroadcastReply
	for _, n := range others {
		out = append(out, n.LocalBroadcast(op))
	}
	return out, nil
}

func newCluster2(t *testing.T, ttl time.Duration) *cluster2 {
	t.Helper()
	sys, err := store.OpenFile(t.TempDir() + "/systems.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Register(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	k := &cluster2{t: t}
	nodes := map[ident.NodeID]*Node{}
	for i := range k.nodes {
		cfg := defaultHub()
		cfg.SessionTTL = ttl
		n := NewNode(Options{Hub: cfg, MembershipEvents: true, Secret: []byte("cluster-secret"), Systems: sys})
		k.nodes[i] = n
		nodes[n.ID()] = n
		k.srvs[i] = httptest.NewServer(http.HandlerFunc(n.ServeWS))
	}
	for i, n := range k.nodes {
		k.remotes[i] = &loopRemote{self: n.ID(), nodes: nodes}
		n.SetRemote(remoteCheck{t, k.remotes[i]})
	}
	t.Cleanup(func() {
		for i, n := range k.nodes {
			n.SetRemote(nil)
			n.Shutdown(time.Now().Add(time.Second))
			k.srvs[i].Close()
		}
	})
	return k
}

// remoteCheck passes every operation and answer through gob.
type remoteCheck struct {
	t testing.TB
	l *loopRemote
}

func (r remoteCheck) Unicast(ctx context.Context, node ident.NodeID, op *UnicastOp) (*UnicastReply, error) {
	rep, err := r.l.Unicast(ctx, node, roundTrip(r.t, op))
	if err != nil {
		return nil, err
	}
	return roundTrip(r.t, rep), nil
}

func (r remoteCheck) Broadcast(ctx context.Context, op *BroadcastOp) ([]*BroadcastReply, []string) {
	reps, un := r.l.Broadcast(ctx, roundTrip(r.t, op))
	for i := range reps {
		reps[i] = roundTrip(r.t, reps[i])
	}
	return reps, un
}

func (k *cluster2) dial(i int, query url.Values) (*wsClient, welcomeMoved) {
	k.t.Helper()
	if query == nil {
		query = url.Values{}
	}
	query.Set("systemId", "s1")
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(k.srvs[i].URL, "http")+"/?"+query.Encode(), nil)
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: k.t, ws: ws}
	var w welcomeMoved
	c.readJSON(&w)
	c.id = w.Data.ClientID
	return c, w
}

type welcomeMoved struct {
	Code int
	Data struct {
		ClientID         string `json:"clientId"`
		ResumeToken      string `json:"resumeToken"`
		Resumed          bool   `json:"resumed"`
		PreviousClientID string `json:"previousClientId"`
	}
}

// A resume that lands on another node takes the session over: a new
// clientId naming that node, the gap replayed, one 1003 to the members
// instead of a leave and a join, and the old clientId still usable.
func TestSessionMovesToAnotherNode(t *testing.T) {
	k := newCluster2(t, time.Minute)
	ctx := context.Background()
	a, w := k.dial(0, nil)
	b, _ := k.dial(1, nil)
	for _, c := range []*wsClient{a, b} {
		if err := k.nodes[0].BindToGroup(ctx, "s1", c.id, "room", "u-"+c.id[:4], "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.nodes[1].BindToUser(ctx, "s1", a.id, "alice"); err != nil {
		t.Fatal(err)
	}
	a.nextSeq() // a's join
	a.nextSeq() // b's join
	b.nextSeq() // b's join
	if cl := k.nodes[0].hub.lookup("s1", a.id); cl == nil {
		t.Fatal("a is not on node 0")
	}
	// Drop a's connection; push while it is suspended.
	_ = a.ws.UnderlyingConn().Close()
	h := &harness{t: t, node: k.nodes[0]}
	h.drop(a)
	if _, err := k.nodes[1].SendToGroup(ctx, "s1", "room", msg(`"gap"`)); err != nil {
		t.Fatal(err)
	}
	b.nextSeq()

	r, rw := k.dial(1, url.Values{"resume": {w.Data.ResumeToken}, "lastSeq": {"2"}})
	if !rw.Data.Resumed || rw.Data.PreviousClientID != a.id || rw.Data.ClientID == a.id || rw.Data.ClientID == "" {
		t.Fatalf("welcome %+v", rw)
	}
	if k.nodes[1].hub.lookup("s1", r.id) == nil || k.nodes[0].hub.lookup("s1", a.id) != nil {
		t.Fatal("the client did not move from node 0 to node 1")
	}
	if f := r.nextSeq(); f.Seq != 3 || string(f.Data) != `"gap"` {
		t.Fatalf("replayed %+v", f)
	}
	// Every member, the mover included, gets one 1003.
	for _, c := range []*wsClient{b, r} {
		f := c.nextSeq()
		var ev define.MemberEvent
		_ = json.Unmarshal(f.Data, &ev)
		if f.Code != define.MsgCodeMove || ev.ClientID != r.id || ev.PreviousClientID != a.id || ev.GroupName != "room" || ev.Extend != "x" {
			t.Fatalf("member got %s, want one 1003", f.raw)
		}
	}
	// The old clientId still works through node 0, the user moved too.
	if on, err := k.nodes[0].IsOnline(ctx, "s1", a.id); err != nil || !on {
		t.Fatalf("old clientId online: %v %v", on, err)
	}
	if _, err := k.nodes[0].SendToClient(ctx, "s1", a.id, msg(`"old id"`)); err != nil {
		t.Fatal(err)
	}
	if f := r.nextSeq(); f.Seq != 5 || string(f.Data) != `"old id"` {
		t.Fatalf("forwarded %+v", f)
	}
	if l, _ := k.nodes[0].UserClients(ctx, "s1", "alice"); l.Count != 1 || l.List[0] != r.id {
		t.Fatalf("alice's clients %+v", l)
	}
	list, _ := k.nodes[0].OnlineList(ctx, "s1", "room")
	if list.Count != 2 {
		t.Fatalf("room lists %+v", list)
	}
	// b saw no leave and no join: the next frame is the next push.
	if _, err := k.nodes[0].SendToGroup(ctx, "s1", "room", msg(`"after"`)); err != nil {
		t.Fatal(err)
	}
	if f := b.nextSeq(); string(f.Data) != `"after"` {
		t.Fatalf("b got %s", f.raw)
	}
}

// A node shutting down closes its clients with 1001 but keeps their
// sessions while it drains: a client that reconnects to another node takes
// its session over with nothing lost, and the node stops waiting as soon as
// no session is left to take.
func TestShutdownHandsSessionsOver(t *testing.T) {
	k := newCluster2(t, time.Minute)
	ctx := context.Background()
	a, w := k.dial(0, nil)
	b, _ := k.dial(1, nil)
	for _, c := range []*wsClient{a, b} {
		if err := k.nodes[1].BindToGroup(ctx, "s1", c.id, "room", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	a.nextSeq() // a's join
	a.nextSeq() // b's join
	b.nextSeq() // b's join
	done := make(chan time.Duration)
	start := time.Now()
	go func() {
		k.nodes[0].Shutdown(time.Now().Add(20 * time.Second))
		done <- time.Since(start)
	}()
	if code := a.closeCode(5 * time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for k.nodes[0].hub.lookup("s1", a.id) == nil || !k.nodes[0].hub.lookup("s1", a.id).suspendedSession() {
		if time.Now().After(deadline) {
			t.Fatal("the session was not kept suspended during the shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := k.nodes[1].SendToGroup(ctx, "s1", "room", msg(`"during"`)); err != nil {
		t.Fatal(err)
	}
	b.nextSeq()
	r, rw := k.dial(1, url.Values{"resume": {w.Data.ResumeToken}, "lastSeq": {"2"}})
	if !rw.Data.Resumed || rw.Data.PreviousClientID != a.id {
		t.Fatalf("welcome %+v", rw)
	}
	if f := r.nextSeq(); f.Seq != 3 || string(f.Data) != `"during"` {
		t.Fatalf("replayed %+v", f)
	}
	if f := b.nextSeq(); f.Code != define.MsgCodeMove {
		t.Fatalf("b got %s, want a 1003 (no 1002)", f.raw)
	}
	select {
	case d := <-done:
		if d > 10*time.Second {
			t.Fatalf("shutdown took %v although the only session was taken over", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown did not end once its sessions were taken over")
	}
}
