package routers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"github.com/go-websocket/go-websocket/define"
)

// JSONErrors wraps a plain TCP listener so that the errors Go's HTTP server
// answers by itself, before any handler runs (a malformed request line or
// header, headers over the limit, an unsupported transfer encoding), carry
// the JSON envelope like every other answer, with the same HTTP status.
// (Behind TLS those answers stay plain text: the server must see its
// *tls.Conn.)
func JSONErrors(ln net.Listener) net.Listener { return jsonErrListener{ln} }

type jsonErrListener struct{ net.Listener }

func (l jsonErrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrConn{Conn: c}, nil
}

// jsonErrConn rewrites the server's own error answers on their way out.
type jsonErrConn struct{ net.Conn }

// Unwrap returns the connection underneath: a WebSocket upgrade takes it
// over and writes to it directly.
func (c *jsonErrConn) Unwrap() net.Conn { return c.Conn }

// cannedHeaders follow the status line of every error net/http writes by
// itself, and of nothing else: its own responses list their headers sorted
// (Connection before Content-Type).
const cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *jsonErrConn) Write(p []byte) (int, error) {
	if out, ok := jsonError(p); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// jsonError turns one of net/http's own error answers into the envelope.
func jsonError(p []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(p, []byte(proto)) {
		return nil, false
	}
	end := bytes.Index(p, []byte("\r\n"))
	if end < len(proto)+3 || !bytes.HasPrefix(p[end:], []byte(cannedHeaders)) {
		return nil, false
	}
	line := string(p[len(proto):end]) // "400 Bad Request[: detail]"
	status, err := strconv.Atoi(line[:3])
	if err != nil || status < 400 || status > 599 {
		return nil, false
	}
	body, _ := json.Marshal(define.Response{Code: define.CodeInvalidRequest,
		Msg: "malformed HTTP request: " + line[4:]})
	out := fmt.Appendf(nil, "HTTP/1.1 %s\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		line[:3]+" "+statusText(line), len(body))
	return append(out, body...), true
}

// statusText is the reason phrase of a status line without its detail.
func statusText(line string) string {
	t := line[4:]
	if i := bytes.IndexByte([]byte(t), ':'); i >= 0 {
		t = t[:i]
	}
	return t
}
