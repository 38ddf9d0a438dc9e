package servers

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/define"
)

func TestUsers(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	a, b, other := h.dial("s1"), h.dial("s1"), h.dial("s1")
	for _, c := range []*wsClient{a, b} {
		if err := h.node.BindToUser(ctx, "s1", c.id, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.node.BindToUser(ctx, "s1", "nobody", "alice"); err != define.ErrClientOffline {
		t.Fatalf("bind of an unknown client: %v", err)
	}
	res, err := h.node.SendToUser(ctx, "s1", "alice", msg(`"hi"`), nil)
	if err != nil || res.Recipients != 2 || res.Acked != nil {
		t.Fatalf("send_to_user: %+v %v", res, err)
	}
	for _, c := range []*wsClient{a, b} {
		if p := c.next(); string(p.Data) != `"hi"` || p.MessageID != res.MessageID {
			t.Fatalf("got %+v", p)
		}
	}
	list, _ := h.node.UserClients(ctx, "s1", "alice")
	got := append([]string(nil), list.List...)
	sort.Strings(got)
	want := []string{a.id, b.id}
	sort.Strings(want)
	if list.Count != 2 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("user clients %+v, want %v", list, want)
	}
	if l, _ := h.node.UserClients(ctx, "s2", "alice"); l.Count != 0 || l.List == nil {
		t.Fatalf("another system sees alice: %+v", l)
	}
	// Re-binding moves a client to another user.
	if err := h.node.BindToUser(ctx, "s1", b.id, "bob"); err != nil {
		t.Fatal(err)
	}
	if l, _ := h.node.UserClients(ctx, "s1", "alice"); l.Count != 1 || l.List[0] != a.id {
		t.Fatalf("after moving b to bob: %+v", l)
	}
	if err := h.node.CloseClient(ctx, "s1", a.id); err != nil {
		t.Fatal(err)
	}
	if on, _ := h.node.IsUserOnline(ctx, "s1", "alice"); on {
		t.Fatal("alice is online after her last client closed")
	}
	if on, _ := h.node.IsUserOnline(ctx, "s1", "bob"); !on {
		t.Fatal("bob is not online")
	}
	_ = other
}

func TestTokenUserCannotBeOverridden(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Connect.Authenticate = func(*http.Request, string) (string, error) { return "tok", nil }
	})
	ctx := context.Background()
	c := h.dial("s1")
	err := h.node.BindToUser(ctx, "s1", c.id, "mallory")
	if e, ok := err.(*define.Error); !ok || e.Code != define.CodeInvalidRequest || !strings.Contains(e.Msg, "tok") {
		t.Fatalf("override of the token's user: %v", err)
	}
	if err := h.node.BindToUser(ctx, "s1", c.id, "tok"); err != nil {
		t.Fatalf("bind to the token's own user: %v", err)
	}
	if on, _ := h.node.IsUserOnline(ctx, "s1", "tok"); !on {
		t.Fatal("the token's user is not online")
	}
}

type ackedFrame struct {
	MessageID string `json:"messageId"`
	Ack       bool   `json:"ack"`
	Seq       uint64 `json:"seq"`
}

func TestAcks(t *testing.T) {
	h := sessionHarness(t, time.Minute, nil)
	ctx := context.Background()
	c, _ := h.dialSession("s1", nil)
	answer := func() {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Error(err)
			return
		}
		var f ackedFrame
		_ = json.Unmarshal(b, &f)
		if !f.Ack || f.Seq == 0 || !strings.HasSuffix(string(b), `,"ack":true,"seq":1}`) {
			t.Errorf("frame %s: want \"ack\":true before seq", b)
		}
		// An ack for an unknown message is ignored; then the real one.
		_ = c.ws.WriteMessage(1, []byte(`{"ack":"nope"}`))
		_ = c.ws.WriteMessage(1, []byte(` { "ack" : "`+f.MessageID+`" } `))
	}
	done := make(chan struct{})
	go func() { defer close(done); answer() }()
	res, err := h.node.SendToClientAck(ctx, "s1", c.id, msg(`1`), AckRequest{Timeout: 5 * time.Second})
	<-done
	if err != nil || !res.Acked || res.Recipients != 1 {
		t.Fatalf("acked send: %+v %v", res, err)
	}
	// No answer: acked false once the timeout passes.
	start := time.Now()
	res, err = h.node.SendToClientAck(ctx, "s1", c.id, msg(`2`), AckRequest{Timeout: 100 * time.Millisecond})
	if err != nil || res.Acked || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("unanswered: %+v %v after %v", res, err, time.Since(start))
	}
	if _, err := h.node.SendToClientAck(ctx, "s1", "nobody", msg(`3`), AckRequest{Timeout: time.Second}); err != define.ErrClientOffline {
		t.Fatalf("ack to an unknown client: %v", err)
	}
	// send_to_user with ack: the first client's ack answers it.
	if err := h.node.BindToUser(ctx, "s1", c.id, "u"); err != nil {
		t.Fatal(err)
	}
	c.nextSeq() // the unanswered frame 2
	go func() {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var f ackedFrame
		_ = json.Unmarshal(b, &f)
		_ = c.ws.WriteMessage(1, []byte(`{"ack":"`+f.MessageID+`"}`))
	}()
	ur, err := h.node.SendToUser(ctx, "s1", "u", msg(`4`), &AckRequest{Timeout: 5 * time.Second})
	if err != nil || ur.Acked == nil || !*ur.Acked || ur.Recipients != 1 {
		t.Fatalf("send_to_user with ack: %+v %v", ur, err)
	}
}

func TestParseAck(t *testing.T) {
	for in, want := range map[string]string{
		`{"ack":"m1"}`:       "m1",
		` {"ack" : "m1"} `:   "m1",
		`{"ack":""}`:         "",
		`{"ack":1}`:          "",
		`{"ack":"a\"b"}`:     "",
		`{"upstream":{}}`:    "",
		`{"ack":"m1","x":1}`: "",
		`["ack","m1"]`:       "",
		`{"ack":"` + strings.Repeat("x", 65) + `"}`: "",
	} {
		id, ok := parseAck([]byte(in))
		if string(id) != want || ok != (want != "") {
			t.Errorf("parseAck(%s) = %q %v, want %q", in, id, ok, want)
		}
	}
}
