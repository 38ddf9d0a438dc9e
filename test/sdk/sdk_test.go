// Package sdk tests the Go package for backends (sdk/gows) against the real
// server binary.
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/sdk/gows"
	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

var binPath, confPath string

func TestMain(m *testing.M) {
	os.Exit(nodeproc.RunSuite(m, nodeproc.Suite{Name: "sdk", BinEnv: "E2E_GOWS_BIN", TmpPattern: "gows-sdk-bin-", Parallel: 4},
		func(_, conf, bin string) { confPath, binPath = conf, bin }))
}

// startNode runs the server on a free port until the test ends and returns
// its base URL.
func startNode(t *testing.T, env map[string]string) string {
	t.Helper()
	full := map[string]string{"GOWS_LOG_LEVEL": "error"}
	for k, v := range env {
		full[k] = v
	}
	return nodeproc.Start(t, binPath, confPath, full).URL
}

// dial connects a WebSocket client and returns it with its clientId.
func dial(t *testing.T, base, systemID string) (*wstest.Client, string) {
	t.Helper()
	c := wstest.MustDial(t, base, systemID, wstest.Options{})
	return c, c.ID
}

type push struct {
	MessageID string          `json:"messageId"`
	Code      int             `json:"code"`
	Data      json.RawMessage `json:"data"`
	Ack       bool            `json:"ack"`
}

func read(t *testing.T, ws *wstest.Client) push {
	t.Helper()
	f := ws.NextFrame(t, 5*time.Second)
	return push{MessageID: f.MessageID, Code: f.Code, Data: f.Data, Ack: f.Ack}
}

func TestEveryEndpoint(t *testing.T) {
	t.Parallel()
	base := startNode(t, nil)
	ctx := context.Background()
	c := gows.New(base, "sdk1")
	if _, err := c.Register(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, nil); !gows.IsCode(err, gows.CodeSystemExists) {
		t.Fatalf("second register: %v", err)
	}
	ws, id := dial(t, base, "sdk1")
	if err := c.BindToGroup(ctx, id, "room", gows.Member{UserID: "alice"}); err != nil {
		t.Fatal(err)
	}
	if p := read(t, ws); p.Code != 1001 {
		t.Fatalf("join event %+v", p)
	}
	mid, err := c.SendToClient(ctx, id, gows.Message{Data: map[string]int{"n": 1}})
	if err != nil || mid == "" {
		t.Fatal(mid, err)
	}
	if p := read(t, ws); p.MessageID != mid || string(p.Data) != `{"n":1}` {
		t.Fatalf("push %+v", p)
	}
	res, err := c.SendToClients(ctx, []string{id, "gone"}, gows.Message{Data: 0})
	if err != nil || res.Delivered != 1 || len(res.Offline) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if p := read(t, ws); string(p.Data) != "0" {
		t.Fatalf("data 0 arrived as %s", p.Data)
	}
	b, err := c.SendToGroup(ctx, "room", gows.Message{Msg: "g"})
	if err != nil || b.Recipients != 1 {
		t.Fatalf("%+v %v", b, err)
	}
	read(t, ws)
	if b, err = c.SendToSystem(ctx, gows.Message{}); err != nil || b.Recipients != 1 {
		t.Fatalf("%+v %v", b, err)
	}
	read(t, ws)
	if l, err := c.GetOnlineList(ctx, "room"); err != nil || l.Count != 1 || l.List[0] != id {
		t.Fatalf("%+v %v", l, err)
	}
	if on, err := c.IsOnline(ctx, id); err != nil || !on {
		t.Fatal(on, err)
	}
	if err := c.BindToUser(ctx, id, "u1"); err != nil {
		t.Fatal(err)
	}
	if b, err = c.SendToUser(ctx, "u1", gows.Message{Data: "u"}); err != nil || b.Recipients != 1 {
		t.Fatalf("%+v %v", b, err)
	}
	read(t, ws)
	if l, err := c.GetUserClients(ctx, "u1"); err != nil || l.Count != 1 {
		t.Fatalf("%+v %v", l, err)
	}
	if on, err := c.IsUserOnline(ctx, "u1"); err != nil || !on {
		t.Fatal(on, err)
	}
	// An acked send: the client acks.
	go func() {
		p := read(t, ws)
		_ = ws.Conn.WriteJSON(map[string]string{"ack": p.MessageID})
	}()
	if a, err := c.SendToClientAck(ctx, id, gows.Message{Data: "ack me"}, 3*time.Second); err != nil || !a.Acked {
		t.Fatalf("%+v %v", a, err)
	}
	rs, err := c.Batch(ctx, []gows.Op{
		gows.OpSendToClient(id, gows.Message{Data: "b1"}),
		gows.OpSendToClient("gone", gows.Message{}),
		gows.OpUnbindFromGroup(id, "room"),
		gows.OpBindToGroup(id, "room2", gows.Member{}),
		gows.OpSendToGroup("room2", gows.Message{Data: "b2"}),
	})
	if err != nil || len(rs) != 5 {
		t.Fatal(rs, err)
	}
	var sent struct {
		MessageID string `json:"messageId"`
	}
	if err := rs[0].Decode(&sent); err != nil || sent.MessageID == "" {
		t.Fatal(sent, err)
	}
	if !gows.IsCode(rs[1].Err, gows.CodeClientOffline) || rs[2].Err != nil || rs[4].Err != nil {
		t.Fatalf("batch results %+v", rs)
	}
	if _, err := c.Batch(ctx, []gows.Op{{"op": "nope"}}); !gows.IsCode(err, gows.CodeInvalidRequest) {
		t.Fatalf("unknown op: %v", err)
	}
	if err := c.CloseClient(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseClient(ctx, id); !gows.IsCode(err, gows.CodeClientOffline) {
		t.Fatalf("close of a closed client: %v", err)
	}
	var e *gows.Error
	if _, err := gows.New(base, "nosuch").SendToSystem(ctx, gows.Message{}); !errors.As(err, &e) || e.Code != gows.CodeUnknownSystem || e.HTTPStatus != 404 {
		t.Fatalf("unknown system: %v", err)
	}
}

// Webhook settings through the SDK, and its verification of a real POST.
func TestWebhookVerification(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var secret string
	got := make(chan *gows.WebhookPayload, 16)
	bad := make(chan error, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := secret
		mu.Unlock()
		p, err := gows.ParseWebhook(r, s)
		if err != nil {
			bad <- err
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got <- p
	}))
	defer recv.Close()
	base := startNode(t, nil)
	ctx := context.Background()
	c := gows.New(base, "sdkhook")
	reg, err := c.Register(ctx, &gows.RegisterOptions{WebhookURL: recv.URL, WebhookEvents: []string{gows.EventConnect}})
	if err != nil || len(reg.WebhookSecret) < 32 {
		t.Fatal(reg, err)
	}
	mu.Lock()
	secret = reg.WebhookSecret
	mu.Unlock()
	_, id := dial(t, base, "sdkhook")
	select {
	case p := <-got:
		if len(p.Events) != 1 || p.Events[0].Type != gows.EventConnect || p.Events[0].ClientID != id {
			t.Fatalf("payload %+v", p)
		}
	case err := <-bad:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook")
	}
	info, err := c.GetSystem(ctx)
	if err != nil || info.WebhookURL != recv.URL || info.WebhookSecret != "" {
		t.Fatalf("%+v %v", info, err)
	}
	// A wrong secret is refused by the helper; the node retries until the
	// receiver knows the rotated one.
	up, err := c.UpdateSystem(ctx, gows.SystemUpdate{RotateSecret: true})
	if err != nil || up.WebhookSecret == "" || up.WebhookSecret == reg.WebhookSecret {
		t.Fatalf("%+v %v", up, err)
	}
	_, id2 := dial(t, base, "sdkhook")
	select {
	case err := <-bad:
		if !errors.Is(err, gows.ErrBadSignature) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a POST signed with the rotated secret was not refused")
	}
	mu.Lock()
	secret = up.WebhookSecret
	mu.Unlock()
	select {
	case p := <-got:
		if p.Events[0].ClientID != id2 {
			t.Fatalf("payload %+v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retried webhook did not arrive")
	}
	if err := gows.VerifySignature("k", "1700000000", "sha256=fad0a6560c224a5548753bbe9e8efb895a7c85585fc2fc2428fc5c1579a9c1c8", []byte(`{"events":[]}`), 0); err != nil {
		t.Fatal(err)
	}
}

// 429 is retried after Retry-After; with retries off the error carries it.
func TestRetriesRateLimit(t *testing.T) {
	t.Parallel()
	base := startNode(t, map[string]string{"GOWS_SECURITY_RATELIMIT": "1", "GOWS_SECURITY_RATEBURST": "1"})
	ctx := context.Background()
	if _, err := gows.New(base, "sdkrate").Register(ctx, nil); err != nil {
		t.Fatal(err)
	}
	noRetry := gows.New(base, "sdkrate", gows.WithRetries(0, 0))
	c := gows.New(base, "sdkrate")
	if _, err := c.SendToSystem(ctx, gows.Message{}); err != nil {
		t.Fatal(err)
	}
	var e *gows.Error
	if _, err := noRetry.SendToSystem(ctx, gows.Message{}); !errors.As(err, &e) || e.Code != gows.CodeRateLimited || e.RetryAfter < time.Second {
		t.Fatalf("without retries: %v", err)
	}
	start := time.Now()
	if _, err := c.SendToSystem(ctx, gows.Message{}); err != nil {
		t.Fatalf("with retries: %v", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("retried after %v, before Retry-After", d)
	}
}

// 10009 is retried with backoff (a stub node: a standalone node never
// answers 10009).
func TestRetriesUnavailable(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"code":10009,"msg":"cluster unavailable","data":null}`))
			return
		}
		_, _ = w.Write([]byte(`{"code":0,"msg":"success","data":{"online":true}}`))
	}))
	defer stub.Close()
	on, err := gows.New(stub.URL, "s", gows.WithRetries(3, 10*time.Millisecond)).IsOnline(context.Background(), "c")
	if err != nil || !on || calls != 3 {
		t.Fatalf("online %v err %v after %d calls", on, err, calls)
	}
	_, err = gows.New(stub.URL, "s", gows.WithRetries(1, 10*time.Millisecond)).IsOnline(context.Background(), "c")
	if err != nil {
		t.Fatal(err) // calls 4: success
	}
	mu.Lock()
	calls = 0
	mu.Unlock()
	_, err = gows.New(stub.URL, "s", gows.WithRetries(1, 10*time.Millisecond)).IsOnline(context.Background(), "c")
	if !gows.IsCode(err, gows.CodeUnavailable) {
		t.Fatalf("after one retry: %v", err)
	}
}
