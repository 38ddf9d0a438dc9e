package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type resp struct {
	Status int
	Code   int
	Data   json.RawMessage
	Took   time.Duration
	body   []byte
}

func (r *resp) String() string { return fmt.Sprintf("HTTP %d %s (%v)", r.Status, r.body, r.Took) }

func (r *resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
}

// post calls the API through nginx.
func (c *cluster) post(endpoint, systemID string, body any) *resp {
	c.t.Helper()
	r, err := c.tryPost(c.lb+apiPrefix, endpoint, systemID, body)
	if err != nil {
		c.t.Fatalf("%s: %v", endpoint, err)
	}
	return r
}

const apiPrefix = "/api/websocket/"

// tryPost POSTs to base+endpoint (base ends with the API prefix).
func (c *cluster) tryPost(base, endpoint, systemID string, body any) (*resp, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, base+endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if systemID != "" {
		req.Header.Set("systemId", systemID)
	}
	start := time.Now()
	hr, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	raw, err := io.ReadAll(hr.Body)
	if err != nil {
		return nil, err
	}
	r := &resp{Status: hr.StatusCode, Took: time.Since(start), body: raw}
	var env struct {
		Code int             `json:"code"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%s: not a JSON envelope: HTTP %d %q", endpoint, hr.StatusCode, raw)
	}
	r.Code, r.Data = env.Code, env.Data
	return r, nil
}

type sendResult struct {
	MessageID   string   `json:"messageId"`
	Recipients  int      `json:"recipients"`
	Unreachable []string `json:"unreachable"`
}

type listResult struct {
	Count       int      `json:"count"`
	List        []string `json:"list"`
	Unreachable []string `json:"unreachable"`
}

type frame struct {
	MessageID string          `json:"messageId"`
	Code      int             `json:"code"`
	Data      json.RawMessage `json:"data"`
}

// client is a WebSocket client connected through nginx. When
// reconnect is set, a close 1001 makes it connect again through nginx
// (a browser reconnecting after its node shut down).
type client struct {
	c        *cluster
	systemID string
	base     string // ws://host:port of one node; "" connects through nginx

	closeOnce sync.Once
	mu        sync.Mutex
	id        string
	conn      *websocket.Conn
	closes    []int // close codes seen, in order
	ids       []string
	reconnect bool
	frames    chan frame
	changed   chan struct{} // a value after each (re)connect or drop
	stop      chan struct{}
	done      chan struct{}
}

var dialer = &websocket.Dialer{HandshakeTimeout: 5 * time.Second}

func (c *cluster) dial(systemID string, reconnect bool) *client {
	c.t.Helper()
	return c.dialAt("", systemID, reconnect)
}

// dialNode connects straight to node n.
func (c *cluster) dialNode(n *nodeProc, systemID string) *client {
	c.t.Helper()
	return c.dialAt("ws"+strings.TrimPrefix(n.url, "http"), systemID, false)
}

func (c *cluster) dialAt(base, systemID string, reconnect bool) *client {
	c.t.Helper()
	cl := &client{c: c, systemID: systemID, base: base, reconnect: reconnect, frames: make(chan frame, 1<<16),
		changed: make(chan struct{}, 64), stop: make(chan struct{}), done: make(chan struct{})}
	if err := cl.connect(); err != nil {
		c.t.Fatalf("connect through nginx: %v", err)
	}
	go cl.loop()
	c.t.Cleanup(cl.close)
	return cl
}

func (cl *client) connect() error {
	base := cl.base
	if base == "" {
		base = "ws" + strings.TrimPrefix(cl.c.lb, "http")
	}
	url := base + "/api/websocket/ws?systemId=" + cl.systemID
	conn, _, err := dialer.Dial(url, nil)
	if err != nil {
		return err
	}
	var hello struct {
		Code int
		Data struct{ ClientID string }
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := conn.ReadJSON(&hello); err != nil || hello.Code != 0 || hello.Data.ClientID == "" {
		conn.Close()
		return fmt.Errorf("welcome frame %+v: %v", hello, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	cl.mu.Lock()
	cl.id, cl.conn = hello.Data.ClientID, conn
	cl.ids = append(cl.ids, cl.id)
	cl.mu.Unlock()
	return nil
}

func (cl *client) loop() {
	defer close(cl.done)
	for {
		cl.mu.Lock()
		conn := cl.conn
		cl.mu.Unlock()
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				code := -1 // dropped without a close frame
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = ce.Code
				}
				cl.mu.Lock()
				cl.closes = append(cl.closes, code)
				again := cl.reconnect && code == websocket.CloseGoingAway
				cl.mu.Unlock()
				cl.notify()
				if !again {
					return
				}
				break
			}
			var f frame
			if json.Unmarshal(b, &f) == nil {
				select {
				case cl.frames <- f:
				default: // the test stopped reading; do not block
				}
			}
		}
		// Reconnect through nginx with a short backoff, bounded.
		ok := false
		for attempt := 0; attempt < 50 && !ok; attempt++ {
			select {
			case <-cl.stop:
				return
			case <-time.After(time.Duration(attempt*20) * time.Millisecond):
			}
			ok = cl.connect() == nil
		}
		if !ok {
			return
		}
		cl.notify()
	}
}

func (cl *client) notify() {
	select {
	case cl.changed <- struct{}{}:
	default:
	}
}

func (cl *client) close() {
	cl.closeOnce.Do(cl.doClose)
}

func (cl *client) doClose() {
	close(cl.stop)
	cl.mu.Lock()
	conn := cl.conn
	cl.mu.Unlock()
	conn.Close()
	<-cl.done
	cl.mu.Lock() // a reconnect may have raced the close
	conn = cl.conn
	cl.mu.Unlock()
	conn.Close()
}

func (cl *client) currentID() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.id
}

// connects is how many times the client has connected.
func (cl *client) connects() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.ids)
}

func (cl *client) closeCodes() []int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]int(nil), cl.closes...)
}

func (cl *client) expect(t testing.TB, messageID string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case f := <-cl.frames:
			if f.MessageID == messageID {
				return
			}
			if f.Code == 1001 || f.Code == 1002 {
				continue // membership events are checked elsewhere
			}
			t.Fatalf("client %s: frame %+v, want messageId %s", cl.currentID(), f, messageID)
		case <-deadline:
			t.Fatalf("client %s: no frame %s within 5 s", cl.currentID(), messageID)
		}
	}
}

// nodeOf is the node id a clientId names (bytes 1-6 of its raw form).
func nodeOf(t testing.TB, clientID string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(clientID)
	if err != nil || len(raw) < 7 {
		t.Fatalf("clientId %q is not base64url", clientID)
	}
	return hex.EncodeToString(raw[1:7])
}
