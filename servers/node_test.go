package servers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type harness struct {
	t    *testing.T
	node *Node
	srv  *httptest.Server
}

func defaultHub() HubConfig {
	return HubConfig{PingInterval: time.Second, PongWait: 5 * time.Second, WriteTimeout: 2 * time.Second,
		QueueLength: 64, ReadLimit: 8192}
}

func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	sys, err := store.OpenFile(t.TempDir() + "/systems.json")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Hub: defaultHub(), MembershipEvents: true, Secret: []byte("test-secret"), Systems: sys}
	if mod != nil {
		mod(&o)
	}
	n := NewNode(o)
	for _, s := range []string{"s1", "s2"} {
		if err := n.Register(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, node: n, srv: httptest.NewServer(http.HandlerFunc(n.ServeWS))}
	t.Cleanup(func() {
		n.Shutdown(time.Now().Add(time.Second))
		h.srv.Close()
	})
	return h
}

type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
	id string
}

func (h *harness) dial(systemID string) *wsClient {
	h.t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(h.srv.URL, "http")+"/?systemId="+systemID, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: h.t, ws: ws}
	var env struct {
		Code int
		Data struct{ ClientID string }
	}
	c.readJSON(&env)
	if env.Code != 0 || env.Data.ClientID == "" {
		h.t.Fatalf("welcome %+v", env)
	}
	c.id = env.Data.ClientID
	return c
}

type pushed struct {
	MessageID  string          `json:"messageId"`
	SendUserID string          `json:"sendUserId"`
	Code       int             `json:"code"`
	Msg        string          `json:"msg"`
	Data       json.RawMessage `json:"data"`
}

func (c *wsClient) readJSON(v any) {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatalf("decode %s: %v", b, err)
	}
}

func (c *wsClient) next() pushed {
	c.t.Helper()
	var p pushed
	c.readJSON(&p)
	return p
}

// closeCode reads until the connection ends and returns its close code.
func (c *wsClient) closeCode(timeout time.Duration) int {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	for {
		if _, _, err := c.ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

func msg(data string) *define.Message {
	return &define.Message{Data: json.RawMessage(data)}
}

func TestPushRightAfterWelcome(t *testing.T) {
	h := newHarness(t, nil)
	for i := 0; i < 20; i++ {
		c := h.dial("s1")
		id, err := h.node.SendToClient(context.Background(), "s1", c.id, msg(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		p := c.next()
		if p.MessageID != id || string(p.Data) != fmt.Sprint(i) {
			t.Fatalf("got %+v want id %s", p, id)
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t, nil)
	c := h.dial("s1")
	ctx := context.Background()
	if _, err := h.node.SendToClient(ctx, "s2", c.id, msg("1")); !errors.Is(err, define.ErrClientOffline) {
		t.Fatalf("cross-system send: %v", err)
	}
	if on, _ := h.node.IsOnline(ctx, "s2", c.id); on {
		t.Fatal("online in another system")
	}
	if err := h.node.CloseClient(ctx, "s2", c.id); !errors.Is(err, define.ErrClientOffline) {
		t.Fatalf("cross-system close: %v", err)
	}
	if l, _ := h.node.OnlineList(ctx, "s2", ""); l.Count != 0 || len(l.List) != 0 {
		t.Fatalf("list leaks: %+v", l)
	}
	if on, _ := h.node.IsOnline(ctx, "s1", c.id); !on {
		t.Fatal("not online in its own system")
	}
}

func TestGroupEventsExactlyOnce(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	a, b := h.dial("s1"), h.dial("s1")
	if err := h.node.BindToGroup(ctx, "s1", a.id, "g", "ua", "xa"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, a.next(), define.MsgCodeJoin, a.id, "ua", "xa")
	if err := h.node.BindToGroup(ctx, "s1", b.id, "g", "ub", "xb"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, a.next(), define.MsgCodeJoin, b.id, "ub", "xb")
	expectEvent(t, b.next(), define.MsgCodeJoin, b.id, "ub", "xb")
	// Rebinding updates and sends nothing: the next frame a sees is the marker.
	if err := h.node.BindToGroup(ctx, "s1", b.id, "g", "ub2", "xb2"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(`"marker"`)); err != nil {
		t.Fatal(err)
	}
	if p := a.next(); string(p.Data) != `"marker"` {
		t.Fatalf("rebind sent %+v", p)
	}
	// b disconnects: a gets exactly one 1002 with b's updated fields.
	b.ws.Close()
	expectEvent(t, a.next(), define.MsgCodeLeave, b.id, "ub2", "xb2")
	if err := h.node.UnbindFromGroup(ctx, "s1", a.id, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(`"marker2"`)); err != nil {
		t.Fatal(err)
	}
	if p := a.next(); string(p.Data) != `"marker2"` {
		t.Fatalf("unexpected frame %+v", p)
	}
	l, _ := h.node.OnlineList(ctx, "s1", "g")
	if l.Count != 0 {
		t.Fatalf("group not empty: %+v", l)
	}
}

func expectEvent(t *testing.T, p pushed, code int, id, user, extend string) {
	t.Helper()
	var ev define.MemberEvent
	if err := json.Unmarshal(p.Data, &ev); err != nil {
		t.Fatalf("event data %s: %v", p.Data, err)
	}
	if p.Code != code || ev.ClientID != id || ev.GroupName != "g" || ev.UserID != user || ev.Extend != extend || p.SendUserID != "" {
		t.Fatalf("event %+v %+v, want code %d for %s", p, ev, code, id)
	}
}

func TestEventsOffPerSystem(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.EventsOffSystems = []string{"s1"} })
	a := h.dial("s1")
	ctx := context.Background()
	if err := h.node.BindToGroup(ctx, "s1", a.id, "g", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.node.SendToGroup(ctx, "s1", "g", msg(`1`)); err != nil {
		t.Fatal(err)
	}
	if p := a.next(); p.Code != 0 || string(p.Data) != "1" {
		t.Fatalf("got %+v, want the group message and no event", p)
	}
}

func TestOrder(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.QueueLength = 2000 })
	c := h.dial("s1")
	for i := 0; i < 1000; i++ {
		if _, err := h.node.SendToClient(context.Background(), "s1", c.id, msg(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 1000; i++ {
		if p := c.next(); string(p.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d: got %s", i, p.Data)
		}
	}
}

func TestSlowConsumerDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Hub.QueueLength, o.Hub.WriteTimeout, o.MembershipEvents = 8, 10*time.Second, false
	})
	ctx := context.Background()
	slow, fast := h.dial("s1"), h.dial("s1")
	for _, c := range []*wsClient{slow, fast} {
		if err := h.node.BindToGroup(ctx, "s1", c.id, "g", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	big := `"` + strings.Repeat("x", 64<<10) + `"`
	for i := 0; i < 200; i++ {
		start := time.Now()
		if _, err := h.node.SendToGroup(ctx, "s1", "g", msg(big)); err != nil {
			t.Fatal(err)
		}
		fast.next()
		// Blocking behind the slow client would take the write timeout
		// (10 s); the bound leaves room for a loaded machine under -race.
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("message %d took %v to reach the fast client", i, d)
		}
	}
	if on, _ := h.node.IsOnline(ctx, "s1", slow.id); on {
		t.Fatal("slow consumer still online")
	}
	if code := slow.closeCode(10 * time.Second); code != define.ClosePolicyViolation {
		t.Fatalf("slow consumer closed with %d", code)
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Hub.PingInterval, o.Hub.PongWait = 50*time.Millisecond, 300*time.Millisecond
	})
	ctx := context.Background()
	silent, other := h.dial("s1"), h.dial("s1")
	silent.ws.SetPingHandler(func(string) error { return nil })
	for _, c := range []*wsClient{silent, other} {
		if err := h.node.BindToGroup(ctx, "s1", c.id, "g", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	expectEvent(t, other.next(), define.MsgCodeJoin, other.id, "", "")
	// other answers pings (gorilla's default handler) while it reads.
	expectEvent(t, other.next(), define.MsgCodeLeave, silent.id, "", "")
	if on, _ := h.node.IsOnline(ctx, "s1", silent.id); on {
		t.Fatal("silent client still online")
	}
	if on, _ := h.node.IsOnline(ctx, "s1", other.id); !on {
		t.Fatal("responsive client dropped")
	}
}

func TestReadLimit(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.ReadLimit = 100 })
	c := h.dial("s1")
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("a", 101))); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(5 * time.Second); code != define.CloseTooBig {
		t.Fatalf("close code %d", code)
	}
}

func TestCloseClientAndShutdown(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	a, b := h.dial("s1"), h.dial("s1")
	if err := h.node.CloseClient(ctx, "s1", a.id); err != nil {
		t.Fatal(err)
	}
	if code := a.closeCode(5 * time.Second); code != define.CloseNormal {
		t.Fatalf("close_client code %d", code)
	}
	if err := h.node.CloseClient(ctx, "s1", a.id); !errors.Is(err, define.ErrClientOffline) {
		t.Fatalf("second close: %v", err)
	}
	done := make(chan struct{})
	go func() { h.node.Shutdown(time.Now().Add(5 * time.Second)); close(done) }()
	if code := b.closeCode(5 * time.Second); code != define.CloseGoingAway {
		t.Fatalf("shutdown code %d", code)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not return")
	}
}

func TestRefusedConnects(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Connect.AllowedOrigins = []string{"https://*.example.com"} })
	base := "ws" + strings.TrimPrefix(h.srv.URL, "http") + "/"
	cases := []struct {
		query, origin string
		code, close   int
	}{
		{"", "", define.CodeMissingSystemID, define.CloseMissingSystem},
		{"?systemId=nope", "", define.CodeUnknownSystem, define.CloseUnknownSystem},
		{"?systemId=s1", "https://evil.com", define.CodeOriginForbidden, define.CloseOriginRefused},
	}
	for _, c := range cases {
		hdr := http.Header{}
		if c.origin != "" {
			hdr.Set("Origin", c.origin)
		}
		ws, _, err := websocket.DefaultDialer.Dial(base+c.query, hdr)
		if err != nil {
			t.Fatal(err)
		}
		cl := &wsClient{t: t, ws: ws}
		var env define.Response
		cl.readJSON(&env)
		if env.Code != c.code {
			t.Fatalf("%q: code %d", c.query, env.Code)
		}
		if code := cl.closeCode(5 * time.Second); code != c.close {
			t.Fatalf("%q: close %d", c.query, code)
		}
		ws.Close()
	}
	hdr := http.Header{"Origin": {"https://app.example.com"}}
	ws, _, err := websocket.DefaultDialer.Dial(base+"?systemId=s1", hdr)
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
}

func TestChurnLeavesExactList(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MembershipEvents = false; o.Hub.QueueLength = 1024 })
	ctx := context.Background()
	keep := make([]*wsClient, 10)
	for i := range keep {
		keep[i] = h.dial("s1")
		if err := h.node.BindToGroup(ctx, "s1", keep[i].id, "g", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, c := range keep {
		wg.Add(1)
		go func() { // keep reading, so these clients never overflow
			defer wg.Done()
			for {
				if _, _, err := c.ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	var cw sync.WaitGroup
	for w := 0; w < 20; w++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for i := 0; i < 25; i++ {
				ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(h.srv.URL, "http")+"/?systemId=s1", nil)
				if err != nil {
					t.Error(err)
					return
				}
				var env struct{ Data struct{ ClientID string } }
				if err := ws.ReadJSON(&env); err == nil {
					_ = h.node.BindToGroup(ctx, "s1", env.Data.ClientID, "g", "", "")
				}
				if _, err := h.node.SendToGroup(ctx, "s1", "g", msg("1")); err != nil {
					t.Error(err)
				}
				ws.Close()
			}
		}()
	}
	cw.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, _ := h.node.OnlineList(ctx, "s1", "")
		g, _ := h.node.OnlineList(ctx, "s1", "g")
		if l.Count == len(keep) && g.Count == len(keep) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("online %d, group %d, want %d", l.Count, g.Count, len(keep))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range keep {
		c.ws.Close()
	}
	wg.Wait()
}

func TestWriteDelayKeepsOrderAndDelivers(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Hub.WriteDelay, o.Hub.QueueLength, o.MembershipEvents = 5*time.Millisecond, 256, false
	})
	ctx := context.Background()
	a, b := h.dial("s1"), h.dial("s1")
	for _, c := range []*wsClient{a, b} {
		if err := h.node.BindToGroup(ctx, "s1", c.id, "g", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		if _, err := h.node.SendToGroup(ctx, "s1", "g", msg(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if _, err := h.node.SendToClient(ctx, "s1", a.id, msg(fmt.Sprint(-i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		if p := a.next(); string(p.Data) != fmt.Sprint(i) {
			t.Fatalf("a: message %d got %s", i, p.Data)
		}
		if p := a.next(); string(p.Data) != fmt.Sprint(-i) {
			t.Fatalf("a: unicast %d got %s", i, p.Data)
		}
		if p := b.next(); string(p.Data) != fmt.Sprint(i) {
			t.Fatalf("b: message %d got %s", i, p.Data)
		}
	}
}

// A frame written by a writer goroutine leaves a write deadline on the
// socket; once it has passed, the next frame must still go out.
func TestInlineWriteAfterWriteDeadlinePassed(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.WriteTimeout = 50 * time.Millisecond })
	c := h.dial("s1") // the welcome frame went out through a writer goroutine
	time.Sleep(100 * time.Millisecond)
	if _, err := h.node.SendToClient(context.Background(), "s1", c.id, msg(`"late"`)); err != nil {
		t.Fatal(err)
	}
	if p := c.next(); string(p.Data) != `"late"` {
		t.Fatalf("got %+v", p)
	}
}

// The welcome frame comes first even while broadcasts reach the system
// during the connect.
func TestWelcomeFirstDuringBroadcasts(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.QueueLength = 4096 })
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = h.node.SendToSystem(context.Background(), "s1", msg(`"noise"`))
		}
	}()
	for i := 0; i < 100; i++ {
		c := h.dial("s1") // fails the test unless the first frame is the welcome
		c.ws.Close()
	}
	close(stop)
	<-done
}

// A broadcast big enough to be split over several goroutines still reaches
// every client exactly once, in order across consecutive broadcasts.
func TestLargeBroadcastInOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("2,100 connections")
	}
	h := newHarness(t, nil)
	const n = 2*parallelChunk + 52
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = h.dial("s1")
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		res, err := h.node.SendToSystem(ctx, "s1", msg(fmt.Sprint(i)))
		if err != nil || res.Recipients != n {
			t.Fatalf("broadcast %d: %+v %v", i, res, err)
		}
	}
	for _, c := range clients {
		for i := 0; i < 3; i++ {
			if p := c.next(); string(p.Data) != fmt.Sprint(i) {
				t.Fatalf("client %s: frame %d is %s", c.id, i, p.Data)
			}
		}
	}
}
