package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/test/internal/clusterfix"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// resp is one API answer (wstest.Resp).
type resp struct{ *wstest.Resp }

func (r *resp) decode(t testing.TB, v any) {
	t.Helper()
	r.Decode(t, v)
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

const apiPrefix = wstest.Prefix

// tryPost POSTs to base+endpoint (base ends with an API prefix).
func (c *cluster) tryPost(base, endpoint, systemID string, body any) (*resp, error) {
	r, err := (&wstest.API{Client: c.hc}).PostTo(base+endpoint, systemID, body)
	if err != nil {
		return nil, err
	}
	return &resp{r}, nil
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
	wc, err := wstest.Dial(base, cl.systemID, wstest.Options{Dialer: dialer, NoReader: true})
	if err != nil {
		return err
	}
	conn := wc.Conn
	cl.mu.Lock()
	cl.id, cl.conn = wc.ID, conn
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
var nodeOf = clusterfix.NodeOf
