package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// suspendedRe reads a node's count of suspended sessions.
var suspendedRe = regexp.MustCompile(`(?m)^gows_disconnects_total\{reason="suspended"\} (\d+)`)

func (c *cluster) suspended(n *nodeProc) int {
	_, body := c.status(n.url + "/metrics")
	m := suspendedRe.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// awaitSuspended waits until node n has suspended want sessions in all.
func (c *cluster) awaitSuspended(n *nodeProc, want int) {
	c.t.Helper()
	wstest.Eventually(c.t, 10*time.Second, func() bool { return c.suspended(n) >= want },
		"node "+strconv.Itoa(n.idx)+" did not suspend the dropped session")
}

func (c *cluster) nodeByID(id string) *nodeProc {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node with id %s", id)
	return nil
}

// moveEvent is the data of a 1003 event.
type moveEvent struct {
	ClientID         string `json:"clientId"`
	PreviousClientID string `json:"previousClientId"`
	GroupName        string `json:"groupName"`
	UserID           string `json:"userId"`
	Extend           string `json:"extend"`
}

// TestSessionResumeOnAnotherNode: a client whose connection dropped resumes
// through nginx on another node: a new clientId naming that node with
// "previousClientId", the frames of the gap replayed with their seq, one
// 1003 (and no leave or join) to the members of its group on every node,
// and the old clientId still works.
func TestSessionResumeOnAnotherNode(t *testing.T) {
	c := newCluster(t, 3, "GOWS_WEBSOCKET_SESSIONTTL=30s")
	c.register("app")
	api := &wstest.API{URL: c.lb, Client: c.hc}

	// A member on every node, and the client that will move, on node 0.
	var members []*wstest.Client
	for _, n := range c.nodes {
		members = append(members, wstest.MustDial(t, n.url, "app", wstest.Options{}))
	}
	home := c.nodes[0]
	a := wstest.MustDial(t, home.url, "app", wstest.Options{})
	if a.Welcome.ResumeToken == "" {
		t.Fatalf("welcome %s: no resumeToken with sessions on", a.Welcome.Raw)
	}
	for _, m := range members {
		api.OK(t, "bind_to_group", "app", map[string]string{"clientId": m.ID, "groupName": "room"})
	}
	api.OK(t, "bind_to_group", "app", map[string]string{"clientId": a.ID, "groupName": "room", "userId": "ann", "extend": "x"})
	for i, m := range members {
		for range len(members) - i + 1 { // the joins of itself, of the members after it, and of a
			if f := m.NextFrame(t, 5*time.Second); f.Code != 1001 {
				t.Fatalf("member %d: %s, want a join event", i, f.Raw)
			}
		}
	}
	a.ExpectSeq(t, 5*time.Second, 1) // its own join
	var sr struct{ MessageID string }
	wstest.Decode(t, api.OK(t, "send_to_client", "app", map[string]any{"clientId": a.ID, "data": "before"}), &sr)
	if f := a.ExpectSeq(t, 5*time.Second, 2); f.MessageID != sr.MessageID {
		t.Fatalf("got %s, want %s", f.Raw, sr.MessageID)
	}
	last := int64(2)

	// The drop, and two frames in the gap.
	before := c.suspended(home)
	a.Abort()
	c.awaitSuspended(home, before+1)
	var gap []string
	wstest.Decode(t, api.OK(t, "send_to_client", "app", map[string]any{"clientId": a.ID, "data": "gap1"}), &sr)
	gap = append(gap, sr.MessageID)
	var gr struct {
		MessageID  string
		Recipients int
	}
	wstest.Decode(t, api.OK(t, "send_to_group", "app", map[string]any{"groupName": "room", "data": "gap2"}), &gr)
	if gr.Recipients != 4 {
		t.Errorf("send_to_group during the gap: recipients %d, want 4 (the suspended client counts)", gr.Recipients)
	}
	gap = append(gap, gr.MessageID)
	for i, m := range members {
		if f := m.NextFrame(t, 5*time.Second); f.MessageID != gr.MessageID {
			t.Fatalf("member %d: %s, want %s", i, f.Raw, gr.MessageID)
		}
	}

	// Resume through nginx until round-robin puts it on another node (a
	// resume on the same node keeps the clientId: drop that one again).
	var r *wstest.Client
	for attempt := 0; ; attempt++ {
		if attempt == 6 {
			t.Fatal("6 resumes through nginx all landed on the node that holds the session")
		}
		r = wstest.MustDial(t, c.lb, "app", wstest.Options{Query: wstest.ResumeQuery(a.Welcome.ResumeToken, last)})
		if !r.Welcome.IsResumed() {
			t.Fatalf("resume through nginx: welcome %s, want resumed true", r.Welcome.Raw)
		}
		if r.ID != a.ID {
			break
		}
		// Same node: the gap is replayed here; read it and drop again.
		for _, id := range gap {
			last++
			if f := r.ExpectSeq(t, 5*time.Second, last); f.MessageID != id {
				t.Fatalf("replay on the same node: %s, want %s", f.Raw, id)
			}
		}
		gap = nil
		n := c.suspended(home)
		r.Abort()
		c.awaitSuspended(home, n+1)
	}
	to := c.nodeByID(nodeOf(t, r.ID))
	if to == home || r.Welcome.PreviousClientID != a.ID {
		t.Fatalf("moved welcome %s: want a clientId of another node than %d and previousClientId %s", r.Welcome.Raw, home.idx, a.ID)
	}
	t.Logf("session moved from node %d to node %d", home.idx, to.idx)
	for _, id := range gap {
		last++
		if f := r.ExpectSeq(t, 5*time.Second, last); f.MessageID != id {
			t.Fatalf("replay after the move: %s, want %s", f.Raw, id)
		}
	}

	// One 1003 to every member, on every node, and nothing else; the moved
	// client, a member itself, gets it after the replay.
	want := moveEvent{ClientID: r.ID, PreviousClientID: a.ID, GroupName: "room", UserID: "ann", Extend: "x"}
	last++
	if f := r.ExpectSeq(t, 5*time.Second, last); f.Code != 1003 {
		t.Errorf("moved client: %s, want its own 1003 after the replay", f.Raw)
	} else {
		var got moveEvent
		if json.Unmarshal(f.Data, &got) != nil || got != want {
			t.Errorf("moved client: 1003 %s, want %+v", f.Data, want)
		}
	}
	for i, m := range members {
		f := m.NextFrame(t, 5*time.Second)
		var got moveEvent
		var keys map[string]json.RawMessage
		if f.Code != 1003 || json.Unmarshal(f.Data, &got) != nil || json.Unmarshal(f.Data, &keys) != nil || got != want || len(keys) != 5 {
			t.Errorf("member %d on node %d: %s, want one 1003 with %+v", i, c.nodes[i].idx, f.Raw, want)
		}
		if f.SendUserID != "" {
			t.Errorf("member %d: 1003 with sendUserId %q", i, f.SendUserID)
		}
		m.ExpectNoFrame(t, 300*time.Millisecond)
	}

	// The new clientId and the old one both reach the client.
	wstest.Decode(t, api.OK(t, "send_to_client", "app", map[string]any{"clientId": r.ID, "data": "new id"}), &sr)
	last++
	if f := r.ExpectSeq(t, 5*time.Second, last); f.MessageID != sr.MessageID {
		t.Fatalf("send to the new clientId: %s", f.Raw)
	}
	wstest.Decode(t, api.OK(t, "send_to_client", "app", map[string]any{"clientId": a.ID, "data": "old id"}), &sr)
	last++
	if f := r.ExpectSeq(t, 5*time.Second, last); f.MessageID != sr.MessageID {
		t.Fatalf("send to the old clientId: %s", f.Raw)
	}
	var on struct{ Online bool }
	wstest.Decode(t, api.OK(t, "is_online", "app", map[string]string{"clientId": a.ID}), &on)
	if !on.Online {
		t.Error("is_online of the old clientId after the move: false, want true (forwarded)")
	}
	var l struct {
		Count int
		List  []string
	}
	wstest.Eventually(t, 5*time.Second, func() bool {
		wstest.Decode(t, api.OK(t, "get_online_list", "app", map[string]string{"groupName": "room"}), &l)
		return l.Count == 4 && contains(l.List, r.ID) && !contains(l.List, a.ID)
	}, "get_online_list room does not list the new clientId instead of the old one")

	// Closing it now is one leave, with the new clientId, on every node.
	r.Close()
	for _, m := range members {
		f := m.NextFrame(t, 5*time.Second)
		wstest.CheckEvent(t, m.ID, f, 1002, wstest.MemberEvent{ClientID: r.ID, GroupName: "room", UserID: "ann", Extend: "x"})
		m.ExpectNoFrame(t, 300*time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestUsersAcrossNodes: a user's clients on different nodes all get a
// send_to_user made through nginx; the lists cover every node; an ack from
// a client on another node than the API call's answers the call.
func TestUsersAcrossNodes(t *testing.T) {
	c := newCluster(t, 3)
	c.register("app")
	api := &wstest.API{URL: c.lb, Client: c.hc}
	var devices []*wstest.Client
	for _, n := range c.nodes[:2] {
		d := wstest.MustDial(t, n.url, "app", wstest.Options{})
		api.OK(t, "bind_to_user", "app", map[string]string{"clientId": d.ID, "userId": "ann"})
		devices = append(devices, d)
	}
	other := wstest.MustDial(t, c.nodes[2].url, "app", wstest.Options{})
	var l struct {
		Count int
		List  []string
	}
	wstest.Eventually(t, 5*time.Second, func() bool {
		wstest.Decode(t, api.OK(t, "get_user_clients", "app", map[string]string{"userId": "ann"}), &l)
		return l.Count == 2 && contains(l.List, devices[0].ID) && contains(l.List, devices[1].ID)
	}, "get_user_clients does not list the user's clients on both nodes")
	for _, n := range c.nodes {
		var on struct{ Online bool }
		r, err := (&wstest.API{URL: n.url, Client: c.hc}).Post("is_user_online", "app", map[string]string{"userId": "ann"})
		if err != nil || r.Code != 0 {
			t.Fatalf("is_user_online on node %d: %v %v", n.idx, r, err)
		}
		wstest.Decode(t, r.Data, &on)
		if !on.Online {
			t.Errorf("is_user_online on node %d: false", n.idx)
		}
	}
	var sr struct {
		MessageID  string
		Recipients int
	}
	wstest.Decode(t, api.OK(t, "send_to_user", "app", map[string]any{"userId": "ann", "data": "all devices"}), &sr)
	if sr.Recipients != 2 {
		t.Errorf("send_to_user: recipients %d, want 2", sr.Recipients)
	}
	for _, d := range devices {
		if f := d.NextFrame(t, 5*time.Second); f.MessageID != sr.MessageID {
			t.Errorf("device %s: %s, want %s", d.ID, f.Raw, sr.MessageID)
		}
	}
	other.ExpectNoFrame(t, 300*time.Millisecond)

	// An ack request made on node 2 for a client of node 0.
	node2 := &wstest.API{URL: c.nodes[2].url, Client: c.hc}
	type answer struct {
		r   *wstest.Resp
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		r, err := node2.Post("send_to_client", "app", map[string]any{"clientId": devices[0].ID, "data": "ack?", "ack": true, "ackTimeout": "5s"})
		ch <- answer{r, err}
	}()
	f := devices[0].NextFrame(t, 5*time.Second)
	if !f.Ack {
		t.Fatalf("frame %s: want \"ack\": true", f.Raw)
	}
	if err := devices[0].Ack(f.MessageID); err != nil {
		t.Fatal(err)
	}
	var got answer
	select {
	case got = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the acked send through another node did not answer")
	}
	if got.err != nil || got.r.Code != 0 {
		t.Fatalf("acked send through another node: %v %v", got.r, got.err)
	}
	var ack struct{ Acked bool }
	wstest.Decode(t, got.r.Data, &ack)
	if !ack.Acked {
		t.Errorf("acked send through another node: %s, want acked true", got.r.Data)
	}

	// A device that leaves leaves the lists of every node.
	devices[1].Close()
	wstest.Eventually(t, 5*time.Second, func() bool {
		wstest.Decode(t, api.OK(t, "get_user_clients", "app", map[string]string{"userId": "ann"}), &l)
		return l.Count == 1 && l.List[0] == devices[0].ID
	}, "get_user_clients still lists the closed device")
}

// TestSessionsSurviveSigterm: a node that shuts down closes its clients
// with 1001 but keeps their sessions while it drains; each client resumes
// through nginx on another node with the frames it had not yet seen
// replayed, the members of its group get one 1003 each and no leave, and
// the node exits 0 once its sessions are taken.
func TestSessionsSurviveSigterm(t *testing.T) {
	c := newCluster(t, 3, "GOWS_WEBSOCKET_SESSIONTTL=30s")
	c.register("app")
	api := &wstest.API{URL: c.lb, Client: c.hc}
	leaving := c.nodes[2]
	member := wstest.MustDial(t, c.nodes[0].url, "app", wstest.Options{})
	api.OK(t, "bind_to_group", "app", map[string]string{"clientId": member.ID, "groupName": "room"})
	member.NextFrame(t, 5*time.Second)
	const n = 8
	var cs []*wstest.Client
	for range n {
		cl := wstest.MustDial(t, leaving.url, "app", wstest.Options{})
		api.OK(t, "bind_to_group", "app", map[string]string{"clientId": cl.ID, "groupName": "room"})
		cl.ExpectSeq(t, 5*time.Second, 1)
		if f := member.NextFrame(t, 5*time.Second); f.Code != 1001 {
			t.Fatalf("member: %s, want a join", f.Raw)
		}
		cs = append(cs, cl)
	}
	// Two messages each: the client will say it saw only the first. Its
	// frames so far are its join, the joins of the clients that joined
	// after it, then the two messages.
	msgs := make([][]string, n)
	last := make([]int64, n)
	for i, cl := range cs {
		for k := range 2 {
			var sr struct{ MessageID string }
			wstest.Decode(t, api.OK(t, "send_to_client", "app", map[string]any{"clientId": cl.ID, "data": k}), &sr)
			msgs[i] = append(msgs[i], sr.MessageID)
		}
		for k := 0; k < 2; {
			f := cl.NextFrame(t, 5*time.Second)
			if f.Seq == nil {
				t.Fatalf("client %d: frame without seq %s", i, f.Raw)
			}
			if f.MessageID != msgs[i][k] {
				continue // a join of a client that joined later
			}
			if k == 0 {
				last[i] = *f.Seq
			}
			k++
		}
	}
	start := time.Now()
	if err := leaving.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, cl := range cs {
		cl.ExpectClose(t, 1001, 10*time.Second)
	}
	moved := map[string]bool{}
	for i, cl := range cs {
		r := wstest.MustDial(t, c.lb, "app", wstest.Options{Query: wstest.ResumeQuery(cl.Welcome.ResumeToken, last[i])})
		if !r.Welcome.IsResumed() || r.Welcome.PreviousClientID != cl.ID || nodeOf(t, r.ID) == leaving.id {
			t.Fatalf("client %d resumed through nginx after SIGTERM: welcome %s, want resumed on another node with previousClientId %s", i, r.Welcome.Raw, cl.ID)
		}
		if f := r.ExpectSeq(t, 5*time.Second, last[i]+1); f.MessageID != msgs[i][1] {
			t.Errorf("client %d: replayed %s, want %s", i, f.Raw, msgs[i][1])
		}
		if f := r.ExpectSeq(t, 5*time.Second, last[i]+2); f.Code != 1003 {
			t.Errorf("client %d: %s, want its 1003", i, f.Raw)
		}
		moved[cl.ID] = true
	}
	code, exited := leaving.exitCode(15 * time.Second)
	if !exited || code != 0 {
		t.Fatalf("node after SIGTERM: exited %v code %d\n%s", exited, code, leaving.logTail(3000))
	}
	t.Logf("SIGTERM: %d sessions moved, node exited 0 after %v", n, time.Since(start).Round(time.Millisecond))
	for range n {
		f := member.NextFrame(t, 5*time.Second)
		var ev moveEvent
		if f.Code != 1003 || json.Unmarshal(f.Data, &ev) != nil || !moved[ev.PreviousClientID] {
			t.Fatalf("member: %s, want one 1003 per moved client", f.Raw)
		}
		delete(moved, ev.PreviousClientID)
	}
	member.ExpectNoFrame(t, 500*time.Millisecond)
}
