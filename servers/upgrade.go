package servers

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
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
	// Subprotocols the node speaks. Of the Sec-WebSocket-Protocol values a
	// client offers, the first one in this list is selected; when none is,
	// the answer carries no Sec-WebSocket-Protocol header (RFC 6455 allows
	// it, and the client decides whether to go on).
	Subprotocols []string
}

// selectSubprotocol is the first subprotocol the client offered that the
// node speaks, "" when there is none. The offers may come in several header
// lines (RFC 6455 section 4.1), each a comma-separated list.
func (p *ConnectPolicy) selectSubprotocol(r *http.Request) string {
	for _, line := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, offered := range strings.Split(line, ",") {
			offered = strings.TrimSpace(offered)
			for _, s := range p.Subprotocols {
				if offered == s {
					return offered
				}
			}
		}
	}
	return ""
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

// noWriteBuffers is never drawn from (the server writes raw frames itself);
// setting it stops gorilla from giving each connection a write buffer.
type noWriteBuffers struct{}

func (noWriteBuffers) Get() any { return nil }
func (noWriteBuffers) Put(any)  {}

// upgrader is the node's handshake: gorilla/websocket answers it, and then
// the node reads and writes the socket itself. Subprotocols are selected by
// the node (in the client's order of preference), not by gorilla.
func (p *ConnectPolicy) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   512,
		WriteBufferPool:  noWriteBuffers{},
		// Origins are checked after the upgrade so a refused browser gets the
		// error frame and the 4003 close code instead of a bare 403.
		CheckOrigin: func(*http.Request) bool { return true },
	}
}

// CheckUpgrade reports what makes r an invalid WebSocket opening handshake
// (RFC 6455 section 4.2.1), as a 10001 error naming it; nil when it is a
// valid one. Checked before the upgrade, so a bad handshake gets the JSON
// error envelope like every other answer.
func CheckUpgrade(r *http.Request) error {
	bad := func(format string, args ...any) error {
		return define.Errorf(define.CodeInvalidRequest, format, args...)
	}
	switch {
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return bad("this endpoint needs a WebSocket upgrade (GET with Connection: Upgrade and Upgrade: websocket)")
	case r.Method != http.MethodGet:
		return bad("a WebSocket upgrade must be a GET, not %s", r.Method)
	case !r.ProtoAtLeast(1, 1):
		return bad("a WebSocket upgrade needs HTTP/1.1 or later (the request is %s)", r.Proto)
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return bad("header Sec-WebSocket-Version must be 13, not %q", r.Header.Get("Sec-WebSocket-Version"))
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
	if err != nil || len(key) != 16 {
		return bad("header Sec-WebSocket-Key must be 16 bytes in base64")
	}
	return nil
}

// headerHasToken reports whether a comma-separated header holds token
// (case-insensitive), in any of its lines.
func headerHasToken(h http.Header, name, token string) bool {
	for _, line := range h.Values(name) {
		for _, t := range strings.Split(line, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// refuseHandshake answers a bad opening handshake with the JSON envelope.
func refuseHandshake(w http.ResponseWriter, err error) {
	e, _ := err.(*define.Error)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Sec-WebSocket-Version", "13")
	w.WriteHeader(e.HTTPStatus())
	_ = json.NewEncoder(w).Encode(define.Response{Code: e.Code, Msg: e.Msg})
}

// netConn is the connection a WebSocket runs on, without the listener's
// wrapper (which only rewrites the HTTP server's own error answers): the
// writer writes to the socket itself.
func netConn(ws *websocket.Conn) net.Conn {
	nc := ws.UnderlyingConn()
	if u, ok := nc.(interface{ Unwrap() net.Conn }); ok {
		return u.Unwrap()
	}
	return nc
}

// refusal is why a connect was refused.
type refusal struct {
	code      int // define error code, carried in the error frame
	closeCode int
	msg       string
	reason    string // metrics label
}

// ServeWS upgrades a WebSocket request and registers the client; the
// reader runs on its own goroutine, so the HTTP handler's stack and buffers
// are released right away. A request that is not a valid opening handshake
// gets the JSON error envelope (10001, HTTP 400).
func (n *Node) ServeWS(w http.ResponseWriter, r *http.Request) {
	if err := CheckUpgrade(r); err != nil {
		refuseHandshake(w, err)
		return
	}
	p := &n.opts.Connect
	var answer http.Header
	if sp := p.selectSubprotocol(r); sp != "" {
		answer = http.Header{"Sec-Websocket-Protocol": {sp}}
	}
	n.upgraderOnce.Do(func() {
		n.upgrader = p.upgrader()
		n.upgrader.EnableCompression = n.hub.cfg.Compression
	})
	ws, err := n.upgrader.Upgrade(w, r, answer)
	if err != nil {
		return // gorilla has answered with an HTTP error
	}
	systemID := r.URL.Query().Get("systemId")
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
	if n.hub.cfg.SessionTTL > 0 {
		q := r.URL.Query()
		if tok := q.Get("resume"); tok != "" && n.resume(netConn(ws), systemID, userID, tok, q.Get("lastSeq")) {
			return
		}
	}
	id := n.minter.Mint(systemID)
	// From here on the server reads and writes the socket itself.
	c := newClient(n.hub, id, systemID, userID, netConn(ws))
	c.w.deflate = n.hub.cfg.Compression && offersDeflate(r.Header)
	// This path owns the write side until the welcome frame is out: frames
	// for the client, which is addressable as soon as it is added, queue up
	// behind it, so the welcome is always first and a push right after it
	// arrives.
	c.w.claim()
	if err := n.hub.add(c); err != nil {
		n.refuse(ws, refusal{define.CodeRateLimited, define.CloseTooManyClients, err.Error(), "limit"})
		return
	}
	if n.hub.cfg.SessionTTL > 0 {
		c.w.pushFirst(welcomeFrame(id, n.resumeTokens.mint(systemID, id), false))
	} else {
		c.w.pushFirst(envelopeFrame(define.CodeSuccess, "success", id))
	}
	c.w.flush() // never delayed by a write delay: the client waits for it
	c.w.trim()
	go c.readLoop()
}

// refuse writes the error envelope and a 4xxx close frame, then closes.
func (n *Node) refuse(ws *websocket.Conn, rf refusal) {
	n.metrics.ConnectsRefused.WithLabelValues(rf.reason).Inc()
	n.log.Debug("websocket connect refused", zap.String("reason", rf.reason), zap.Int("closeCode", rf.closeCode))
	nc := netConn(ws)
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
