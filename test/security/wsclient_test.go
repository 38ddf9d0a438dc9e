package security

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

var dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}

// wsClient is a WebSocket connection whose reader goroutine hands every
// received message to a channel, so a test can wait for "the next frame"
// with a deadline without breaking the connection.
type wsClient struct {
	conn   *websocket.Conn
	ID     string // clientId from the welcome frame ("" when refused)
	frames chan []byte
	quit   chan struct{}
	done   chan struct{} // closed when the reader ended; err is then valid
	err    error
	once   sync.Once
}

func newWSClient(conn *websocket.Conn) *wsClient {
	c := &wsClient{conn: conn, frames: make(chan []byte, 256), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for i := 0; i < 1_000_000; i++ {
			_, b, err := conn.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			select {
			case c.frames <- b:
			case <-c.quit:
				c.err = errors.New("client closed by the test")
				return
			}
		}
		c.err = errors.New("reader stopped after 1,000,000 messages")
	}()
	return c
}

// next returns the next message, waiting at most d.
func (c *wsClient) next(d time.Duration) ([]byte, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case b := <-c.frames:
		return b, nil
	default:
	}
	select {
	case b := <-c.frames:
		return b, nil
	case <-c.done:
		select {
		case b := <-c.frames:
			return b, nil
		default:
		}
		return nil, fmt.Errorf("connection ended: %w", c.err)
	case <-timer.C:
		return nil, errTimeout
	}
}

// endErr waits at most d for the connection to end and returns why, with the
// messages that arrived before.
func (c *wsClient) endErr(d time.Duration) ([][]byte, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var got [][]byte
	for i := 0; i < 10000; i++ {
		select {
		case b := <-c.frames:
			got = append(got, b)
		case <-c.done:
			for {
				select {
				case b := <-c.frames:
					got = append(got, b)
				default:
					return got, c.err
				}
			}
		case <-timer.C:
			return got, errTimeout
		}
	}
	return got, errTimeout
}

// closeCode returns the close code the server sent (-1: ended without a
// close frame; -2: still open after d).
func (c *wsClient) closeCode(d time.Duration) (int, [][]byte, error) {
	got, err := c.endErr(d)
	if errors.Is(err, errTimeout) {
		return -2, got, err
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, got, err
	}
	return -1, got, err
}

// Close sends a normal close frame, closes the socket and waits (bounded)
// for the reader.
func (c *wsClient) Close() {
	c.once.Do(func() {
		_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		close(c.quit)
		_ = c.conn.Close()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	})
}

// dialOpt tunes one connect.
type dialOpt struct {
	path   string      // default mainWSPath
	origin string      // Origin header ("" none)
	token  *string     // connect token; nil: minted by the node's secret when it has one
	userID string      // userId claim of the minted token
	header http.Header // extra headers
}

func (n *node) wsURL(path, systemID, token string) string {
	u := "ws://127.0.0.1:" + strconv.Itoa(n.port) + path + "?systemId=" + url.QueryEscape(systemID)
	if token != "" {
		u += "&token=" + url.QueryEscape(token)
	}
	return u
}

// connect opens a WebSocket (without reading anything); the client is closed
// when the test ends.
func (n *node) connect(t testing.TB, systemID string, o dialOpt) (*wsClient, error) {
	t.Helper()
	path := o.path
	if path == "" {
		path = mainWSPath
	}
	tok := ""
	if o.token != nil {
		tok = *o.token
	} else if n.connectSecret != "" {
		tok = signToken(t, n.connectSecret, jwt.SigningMethodHS256, jwt.MapClaims{
			"systemId": systemID, "userId": o.userID, "exp": time.Now().Add(time.Hour).Unix(),
		})
	}
	h := http.Header{}
	for k, v := range o.header {
		h[k] = v
	}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	conn, resp, err := dialer.Dial(n.wsURL(path, systemID, tok), h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake: %v (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c := newWSClient(conn)
	t.Cleanup(c.Close)
	return c, nil
}

// welcome is the first frame of an accepted connection.
type welcome struct {
	Code *int   `json:"code"`
	Msg  string `json:"msg"`
	Data struct {
		ClientID string `json:"clientId"`
	} `json:"data"`
}

// dialOpts connects and requires the welcome frame; it sets c.ID.
func (n *node) dialOpts(t testing.TB, systemID string, o dialOpt) *wsClient {
	t.Helper()
	c, err := n.connect(t, systemID, o)
	if err != nil {
		t.Fatalf("connect %s: %v", systemID, err)
	}
	b, err := c.next(5 * time.Second)
	if err != nil {
		t.Fatalf("connect %s: no welcome frame: %v", systemID, err)
	}
	var w welcome
	if err := json.Unmarshal(b, &w); err != nil || w.Code == nil || *w.Code != 0 || w.Data.ClientID == "" {
		t.Fatalf("connect %s: first frame %s, want the welcome envelope with a clientId", systemID, b)
	}
	c.ID = w.Data.ClientID
	return c
}

func (n *node) dial(t testing.TB, systemID string) *wsClient {
	t.Helper()
	return n.dialOpts(t, systemID, dialOpt{})
}

// refused connects and requires SPEC 3's refusal: the upgrade is answered,
// one text frame with the error envelope (code), then a close frame with
// closeCode.
func (n *node) refused(t testing.TB, systemID string, o dialOpt, code, closeCode int, what string) {
	t.Helper()
	c, err := n.connect(t, systemID, o)
	if err != nil {
		t.Errorf("%s: the upgrade must be answered (then refused with a frame), got %v", what, err)
		return
	}
	defer c.Close()
	cc, got, err := c.closeCode(5 * time.Second)
	if len(got) != 1 {
		t.Errorf("%s: want exactly one error frame before the close, got %d: %q (%v)", what, len(got), got, err)
	} else {
		var e struct {
			Code *int   `json:"code"`
			Msg  string `json:"msg"`
		}
		if err := json.Unmarshal(got[0], &e); err != nil || e.Code == nil || *e.Code != code || e.Msg == "" {
			t.Errorf("%s: error frame %s, want code %d with a msg", what, got[0], code)
		}
	}
	if cc != closeCode {
		t.Errorf("%s: want close code %d after the error frame, got %d (%v)", what, closeCode, cc, err)
	}
}

// pushed is a pushed message (SPEC 3).
type pushed struct {
	MessageID  string          `json:"messageId"`
	SendUserID string          `json:"sendUserId"`
	Code       int             `json:"code"`
	Msg        string          `json:"msg"`
	Data       json.RawMessage `json:"data"`
}

// expect takes the next frame within d and decodes it as a push.
func (c *wsClient) expect(t testing.TB, d time.Duration) pushed {
	t.Helper()
	b, err := c.next(d)
	if err != nil {
		t.Fatalf("client %s: no frame within %v: %v", c.ID, d, err)
	}
	var p pushed
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("client %s: frame %s is not a push: %v", c.ID, b, err)
	}
	return p
}

// expectID requires the next frame to be the message messageId (nothing
// else may come first).
func (c *wsClient) expectID(t testing.TB, messageID, what string) {
	t.Helper()
	p := c.expect(t, 5*time.Second)
	if p.MessageID != messageID {
		t.Errorf("client %s: %s: next frame has messageId %q (code %d, data %s), want %q",
			c.ID, what, p.MessageID, p.Code, p.Data, messageID)
	}
}

// memberEvent is the data of a 1001/1002 event.
type memberEvent struct {
	ClientID  string `json:"clientId"`
	GroupName string `json:"groupName"`
	UserID    string `json:"userId"`
	Extend    string `json:"extend"`
}

// ------------------------------------------------------------------ tokens

// signToken signs claims; SigningMethodNone gives an unsigned "alg: none" token.
func signToken(t testing.TB, secret string, m jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	var key any = []byte(secret)
	if m == jwt.SigningMethodNone {
		key = jwt.UnsafeAllowNoneSignatureType
	}
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}

// ------------------------------------------------------------------ raw sockets

// rawConn is a WebSocket spoken by hand, for frames gorilla would never send.
type rawConn struct {
	nc net.Conn
	br *bufio.Reader
}

// rawUpgrade performs the opening handshake on a plain TCP connection.
func (n *node) rawUpgrade(t testing.TB, systemID string) (*rawConn, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.port), 5*time.Second)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET " + mainWSPath + "?systemId=" + url.QueryEscape(systemID) + " HTTP/1.1\r\n" +
		"Host: 127.0.0.1:" + strconv.Itoa(n.port) + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\n\r\n"
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("upgrade answered HTTP %d", resp.StatusCode)
	}
	_ = nc.SetDeadline(time.Time{})
	t.Cleanup(func() { _ = nc.Close() })
	return &rawConn{nc: nc, br: br}, nil
}

// readFrame reads one server frame (servers never mask).
func (r *rawConn) readFrame(deadline time.Time) (op byte, payload []byte, err error) {
	_ = r.nc.SetReadDeadline(deadline)
	var h [2]byte
	if _, err = io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	op = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r.br, b[:]); err != nil {
			return op, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r.br, b[:]); err != nil {
			return op, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 {
		return op, nil, errors.New("server sent a masked frame")
	}
	if n > 1<<20 {
		return op, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r.br, payload)
	return op, payload, err
}

// welcomeID reads the welcome frame and returns the clientId.
func (r *rawConn) welcomeID() (string, error) {
	op, p, err := r.readFrame(time.Now().Add(5 * time.Second))
	if err != nil {
		return "", err
	}
	var w welcome
	if op != 1 || json.Unmarshal(p, &w) != nil || w.Data.ClientID == "" {
		return "", fmt.Errorf("first frame op %d %q is not the welcome", op, p)
	}
	return w.Data.ClientID, nil
}

// waitEnd reads until the server closes: it returns the close code of the
// server's first close frame (-1 when none came), whether the TCP connection
// ended before the deadline, and how many frames followed the close frame
// (RFC 6455 5.5.1: nothing should).
func (r *rawConn) waitEnd(d time.Duration) (closeCode int, ended bool, after int, err error) {
	deadline := time.Now().Add(d)
	closeCode = -1
	for i := 0; i < 100000; i++ {
		op, p, err := r.readFrame(deadline)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return closeCode, false, after, err
			}
			return closeCode, true, after, err
		}
		switch {
		case closeCode != -1:
			after++
		case op == 8:
			closeCode = 1005
			if len(p) >= 2 {
				closeCode = int(binary.BigEndian.Uint16(p))
			}
		}
	}
	return closeCode, false, after, errors.New("too many frames")
}

// clientFrame builds a client frame; mask adds a masking key (as clients must).
func clientFrame(first byte, payload []byte, mask bool) []byte {
	b := []byte{first}
	mbit := byte(0)
	if mask {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, mbit|byte(n))
	case n <= 0xffff:
		b = append(b, mbit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !mask {
		return append(b, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}
