package servers

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
)

// ConnectPolicy decides who may open a WebSocket.
type ConnectPolicy struct {
	// AllowedOrigins: empty or "*" allows any; entries are origins such as
	// https://app.example.com, and https://*.example.com for any subdomain.
	AllowedOrigins []string
	// Authenticate checks the connect token (nil: no token needed). It returns
	// the userId the token vouches for.
	Authenticate func(r *http.Request, systemID string) (userID string, err error)
}

// originAllowed reports whether a browser Origin may connect. Requests
// without an Origin header (not from a browser) are not restricted by it.
func (p *ConnectPolicy) originAllowed(origin string) bool {
	if origin == "" || len(p.AllowedOrigins) == 0 {
		return true
	}
	for _, a := range p.AllowedOrigins {
		if a == "*" {
			return true // any origin, "null" (file://, sandboxed frames) included
		}
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	for _, a := range p.AllowedOrigins {
		as, ah, ok := strings.Cut(strings.ToLower(a), "://")
		if !ok || as != scheme {
			continue
		}
		if ah == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(ah, "*."); ok && strings.HasSuffix(host, "."+suffix) {
			return true
		}
	}
	return false
}

// writeBufferPool is never drawn from (the server writes raw frames itself);
// setting it stops gorilla from giving each connection a write buffer.
type noWriteBuffers struct{}

func (noWriteBuffers) Get() any { return nil }
func (noWriteBuffers) Put(any)  {}

var upgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   512,
	WriteBufferPool:  noWriteBuffers{},
	// Origins are checked after the upgrade so a refused browser gets the
	// error frame and the 4003 close code instead of a bare 403.
	CheckOrigin: func(*http.Request) bool { return true },
}

// refusal is why a connect was refused.
type refusal struct {
	code      int // define error code, carried in the error frame
	closeCode int
	msg       string
	reason    string // metrics label
}

// ServeWS upgrades a WebSocket request (the caller has checked it is one)
// and registers the client; the reader runs on its own goroutine, so the
// HTTP handler's stack and buffers are released right away.
func (n *Node) ServeWS(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // gorilla has answered with an HTTP error
	}
	systemID := r.URL.Query().Get("systemId")
	p := &n.opts.Connect
	var userID string
	switch {
	case systemID == "":
		n.refuse(ws, refusal{define.CodeMissingSystemID, define.CloseMissingSystem, "missing systemId query parameter", "missing_system"})
		return
	case !p.originAllowed(r.Header.Get("Origin")):
		n.refuse(ws, refusal{define.CodeOriginForbidden, define.CloseOriginRefused, "origin not allowed", "origin"})
		return
	}
	// The token is checked before the system, so that without a valid token
	// nobody can learn which systemIds exist.
	if p.Authenticate != nil {
		if userID, err = p.Authenticate(r, systemID); err != nil {
			n.refuse(ws, refusal{define.CodeUnauthorized, define.CloseUnauthorized, err.Error(), "token"})
			return
		}
	}
	if !n.systems.Exists(systemID) {
		n.refuse(ws, refusal{define.CodeUnknownSystem, define.CloseUnknownSystem, "systemId is not registered", "unknown_system"})
		return
	}
	id := n.minter.Mint(systemID)
	// From here on the server reads and writes the socket itself.
	c := newClient(n.hub, id, systemID, userID, ws.UnderlyingConn())
	// This path owns the write side until the welcome frame is out: frames
	// for the client, which is addressable as soon as it is added, queue up
	// behind it, so the welcome is always first and a push right after it
	// arrives.
	c.w.claim()
	if err := n.hub.add(c); err != nil {
		n.refuse(ws, refusal{define.CodeRateLimited, define.CloseTooManyClients, err.Error(), "limit"})
		return
	}
	c.w.pushFirst(envelopeFrame(define.CodeSuccess, "success", id))
	c.w.flush() // never delayed by a write delay: the client waits for it
	go c.readLoop()
}

// refuse writes the error envelope and a 4xxx close frame, then closes.
func (n *Node) refuse(ws *websocket.Conn, rf refusal) {
	n.metrics.ConnectsRefused.WithLabelValues(rf.reason).Inc()
	n.log.Debug("websocket connect refused", zap.String("reason", rf.reason), zap.Int("closeCode", rf.closeCode))
	nc := ws.UnderlyingConn()
	go func() {
		defer nc.Close()
		_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write(envelopeFrame(rf.code, rf.msg, "")); err != nil {
			return
		}
		if _, err := nc.Write(closeFrame(rf.closeCode, rf.msg)); err != nil {
			return
		}
		// Read until the client closes (bounded), so our frames are not
		// lost to a reset.
		_ = nc.SetReadDeadline(time.Now().Add(closeGrace))
		_, _ = io.CopyN(io.Discard, nc, 64<<10)
	}()
}
