package servers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/define"
)

func sessionHarness(t *testing.T, ttl time.Duration, mod func(*Options)) *harness {
	return newHarness(t, func(o *Options) {
		o.Hub.SessionTTL = ttl
		if mod != nil {
			mod(o)
		}
	})
}

type welcome struct {
	Code int
	Data struct {
		ClientID    string `json:"clientId"`
		ResumeToken string `json:"resumeToken"`
		Resumed     bool   `json:"resumed"`
	}
}

// dialSession connects (query: extra parameters such as resume and
// lastSeq) and returns the client and its welcome.
func (h *harness) dialSession(systemID string, query url.Values) (*wsClient, welcome) {
	h.t.Helper()
	if query == nil {
		query = url.Values{}
	}
	query.Set("systemId", systemID)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(h.srv.URL, "http")+"/?"+query.Encode(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: h.t, ws: ws}
	var w welcome
	c.readJSON(&w)
	if w.Code != 0 || w.Data.ClientID == "" {
		h.t.Fatalf("welcome %+v", w)
	}
	c.id = w.Data.ClientID
	return c, w
}

// seqFrame is a pushed frame with sessions on.
type seqFrame struct {
	pushed
	Seq uint64 `json:"seq"`
	raw string
}

func (c *wsClient) nextSeq() seqFrame {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f seqFrame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("decode %s: %v", b, err)
	}
	f.raw = string(b)
	if want := fmt.Sprintf(`,"seq":%d}`, f.Seq); f.Seq == 0 || !strings.HasSuffix(f.raw, want) {
		c.t.Fatalf("frame %s: seq is not its last key", b)
	}
	return f
}

// drop ends the connection without a close frame, as a network drop does,
// and waits until the node has suspended the session.
func (h *harness) drop(c *wsClient) {
	h.t.Helper()
	cl := h.node.hub.lookup("s1", c.id)
	if cl == nil {
		h.t.Fatal("client not online before the drop")
	}
	_ = c.ws.UnderlyingConn().Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl.w.mu.Lock()
		suspended := cl.w.sess != nil && cl.w.sess.suspended
		cl.w.mu.Unlock()
		if suspended {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the session was not suspended after the connection dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSessionFramesCarrySeq(t *testing.T) {
	h := sessionHarness(t, time.Minute, nil)
	ctx := context.Background()
	a, w := h.dialSession("s1", nil)
	if w.Data.ResumeToken == "" || w.Data.Resumed || len(w.Data.ResumeToken) > 256 {
		t.Fatalf("welcome %+v", w)
	}
	if err := h.node.BindToGroup(ctx, "s1", a.id, "g", "u", "x"); err != nil {
		t.Fatal(err)
	}
	if f := a.nextSeq(); f.Code != define.MsgCodeJoin || f.Seq != 1 {
		t.Fatalf("join event %+v", f)
	}
	for i := 2; i <= 4; i++ {
		if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if f := a.nextSeq(); f.Seq != uint64(i) || string(f.Data) != fmt.Sprint(i) {
			t.Fatalf("frame %d: %+v", i, f)
		}
	}
	if _, err := h.node.SendToGroup(ctx, "s1", "g", msg(`{"k":[1,2]}`)); err != nil {
		t.Fatal(err)
	}
	if f := a.nextSeq(); f.Seq != 5 || string(f.Data) != `{"k":[1,2]}` {
		t.Fatalf("group frame %+v", f)
	}
}

// A dropped connection keeps the client online and in its groups; a resume
// replays every frame after lastSeq with its seq, and the other members see
// neither a leave nor a join.
func TestSessionResumeReplaysTheGap(t *testing.T) {
	h := sessionHarness(t, time.Minute, nil)
	ctx := context.Background()
	a, w := h.dialSession("s1", nil)
	b, _ := h.dialSession("s1", nil)
	for _, c := range []*wsClient{a, b} {
		if err := h.node.BindToGroup(ctx, "s1", c.id, "g", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	a.nextSeq() // a's join
	a.nextSeq() // b's join
	b.nextSeq() // b's join
	if _, err := h.node.SendToGroup(ctx, "s1", "g", msg(`"before"`)); err != nil {
		t.Fatal(err)
	}
	if f := a.nextSeq(); f.Seq != 3 {
		t.Fatalf("before the drop: %+v", f)
	}
	b.nextSeq()

	h.drop(a)
	if on, _ := h.node.IsOnline(ctx, "s1", a.id); !on {
		t.Fatal("a suspended client must stay online")
	}
	for i := range 3 {
		res, err := h.node.SendToGroup(ctx, "s1", "g", msg(fmt.Sprint(i)))
		if err != nil || res.Recipients != 2 {
			t.Fatalf("send during the gap: %+v %v", res, err)
		}
		b.nextSeq()
	}
	list, _ := h.node.OnlineList(ctx, "s1", "g")
	if list.Count != 2 {
		t.Fatalf("the group lists %d members during the gap, want 2", list.Count)
	}

	// The client got frame 3 before the drop: it asks for what follows.
	r, rw := h.dialSession("s1", url.Values{"resume": {w.Data.ResumeToken}, "lastSeq": {"3"}})
	if !rw.Data.Resumed || rw.Data.ClientID != a.id {
		t.Fatalf("resume welcome %+v, want resumed with %s", rw, a.id)
	}
	for i := range 3 {
		f := r.nextSeq()
		if f.Seq != uint64(4+i) || string(f.Data) != fmt.Sprint(i) {
			t.Fatalf("replayed frame %d: %+v", i, f)
		}
	}
	if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(`"live"`)); err != nil {
		t.Fatal(err)
	}
	if f := r.nextSeq(); f.Seq != 7 || string(f.Data) != `"live"` {
		t.Fatalf("first live frame %+v", f)
	}
	// b saw no leave or join for a: its next frame is the next push.
	if _, err := h.node.SendToGroup(ctx, "s1", "g", msg(`"after"`)); err != nil {
		t.Fatal(err)
	}
	if f := b.nextSeq(); string(f.Data) != `"after"` {
		t.Fatalf("b got %+v, want the next push (no membership event)", f)
	}
	if f := r.nextSeq(); f.Seq != 8 {
		t.Fatalf("a got %+v", f)
	}
}

// A session that is not resumed within the TTL ends with one leave event.
func TestSessionExpiresWithOneLeave(t *testing.T) {
	h := sessionHarness(t, 200*time.Millisecond, nil)
	ctx := context.Background()
	a, _ := h.dialSession("s1", nil)
	b, _ := h.dialSession("s1", nil)
	for _, c := range []*wsClient{a, b} {
		if err := h.node.BindToGroup(ctx, "s1", c.id, "g", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	b.nextSeq() // b's join
	h.drop(a)
	f := b.nextSeq()
	var ev define.MemberEvent
	_ = json.Unmarshal(f.Data, &ev)
	if f.Code != define.MsgCodeLeave || ev.ClientID != a.id {
		t.Fatalf("after the TTL: %+v, want a's 1002", f)
	}
	if on, _ := h.node.IsOnline(ctx, "s1", a.id); on {
		t.Fatal("an expired session is still online")
	}
	if _, err := h.node.SendToGroup(ctx, "s1", "g", msg(`"next"`)); err != nil {
		t.Fatal(err)
	}
	if f := b.nextSeq(); string(f.Data) != `"next"` {
		t.Fatalf("b got %+v, want the next push (exactly one leave)", f)
	}
}

// A resume connects as a new client when the session cannot continue.
func TestSessionResumeRefused(t *testing.T) {
	h := sessionHarness(t, time.Minute, func(o *Options) { o.Hub.QueueLength = 4 })
	ctx := context.Background()
	fresh := func(t *testing.T, q url.Values, old string) {
		t.Helper()
		c, w := h.dialSession("s1", q)
		if w.Data.Resumed || c.id == old {
			t.Fatalf("welcome %+v: want a new client", w)
		}
		if _, err := h.node.SendToClient(ctx, "s1", c.id, msg(`1`)); err != nil {
			t.Fatal(err)
		}
		if f := c.nextSeq(); f.Seq != 1 {
			t.Fatalf("a new client's first frame has seq %d", f.Seq)
		}
	}
	t.Run("forged", func(t *testing.T) {
		a, w := h.dialSession("s1", nil)
		h.drop(a)
		fresh(t, url.Values{"resume": {w.Data.ResumeToken + "x"}}, a.id)
		fresh(t, url.Values{"resume": {a.id + ".AAAAAAAAAAAAAAAAAAAAAA"}}, a.id)
	})
	t.Run("other system", func(t *testing.T) {
		a, w := h.dialSession("s1", nil)
		h.drop(a)
		c, w2 := h.dialSession("s2", url.Values{"resume": {w.Data.ResumeToken}})
		if w2.Data.Resumed || c.id == a.id {
			t.Fatalf("a token of s1 resumed on s2: %+v", w2)
		}
	})
	t.Run("ended by the client", func(t *testing.T) {
		a, w := h.dialSession("s1", nil)
		_ = a.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
		a.closeCode(5 * time.Second)
		fresh(t, url.Values{"resume": {w.Data.ResumeToken}}, a.id)
	})
	t.Run("frames no longer kept", func(t *testing.T) {
		a, w := h.dialSession("s1", nil)
		for i := range 6 {
			if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
			a.nextSeq()
		}
		h.drop(a)
		// Frames 1 and 2 were dropped from the 4 kept.
		fresh(t, url.Values{"resume": {w.Data.ResumeToken}, "lastSeq": {"1"}}, a.id)
	})
	t.Run("overflow while suspended", func(t *testing.T) {
		a, w := h.dialSession("s1", nil)
		h.drop(a)
		overflowed := false
		for i := range 5 {
			if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(fmt.Sprint(i))); err != nil {
				overflowed = true
			}
		}
		if !overflowed {
			t.Fatal("5 frames to a suspended session kept 4: the fifth must end it")
		}
		fresh(t, url.Values{"resume": {w.Data.ResumeToken}}, a.id)
	})
}

// A client that resumes before the node noticed the drop takes the session
// over; the old connection ends without a leave.
func TestSessionResumeBeforeTheDropIsSeen(t *testing.T) {
	h := sessionHarness(t, time.Minute, nil)
	ctx := context.Background()
	a, w := h.dialSession("s1", nil)
	if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(`1`)); err != nil {
		t.Fatal(err)
	}
	a.nextSeq()
	r, rw := h.dialSession("s1", url.Values{"resume": {w.Data.ResumeToken}, "lastSeq": {"1"}})
	if !rw.Data.Resumed || rw.Data.ClientID != a.id {
		t.Fatalf("welcome %+v", rw)
	}
	if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(`2`)); err != nil {
		t.Fatal(err)
	}
	if f := r.nextSeq(); f.Seq != 2 {
		t.Fatalf("%+v", f)
	}
}
