// Package wstest is the black-box suites' WebSocket and HTTP test harness:
// one WebSocket client (Dial) that reads the welcome frame and queues every
// later frame, typed pushed frames (Frame), a raw-frame prober for protocol
// tests (Raw), one HTTP API client (API) and one polling helper
// (Eventually). It talks to a node only over the network, so every suite
// can use it, whatever runs the node (a process, nginx in front, or an
// httptest server in the test process).
package wstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// WSPath is the main WebSocket path; LegacyWSPath the path of the original
// API.
const (
	WSPath       = "/api/websocket/ws"
	LegacyWSPath = "/ws"
)

// DefaultDialer is the dialer of Dial when Options.Dialer is nil.
var DefaultDialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}

// ErrNoFrame is returned by Next when no frame arrived within the wait.
var ErrNoFrame = errors.New("no frame within the deadline")

// ClientIDPattern is the shape of every clientId: 1-64 URL-safe characters.
var ClientIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Options tune one connect. The zero value dials WSPath with only systemId
// in the query and reads the welcome frame.
type Options struct {
	Path         string            // WebSocket path; default WSPath
	Query        url.Values        // more query parameters (token, resume, lastSeq ...)
	Header       http.Header       // extra handshake headers
	Origin       string            // Origin header ("" sends none)
	Subprotocols []string          // Sec-WebSocket-Protocol offers
	Dialer       *websocket.Dialer // default DefaultDialer

	NoWelcome bool   // do not read the welcome frame (refusals, raw first frames)
	NoReader  bool   // start no reader goroutine: the test reads Conn itself
	NoPong    bool   // never answer pings
	OnPing    func() // called on every ping (after answering it unless NoPong)
}

// Welcome is the first frame of an accepted connection:
// {"code":0,"msg":"success","data":{"clientId", ["resumeToken", "resumed", "previousClientId"]}}.
type Welcome struct {
	Raw              []byte
	Code             int
	Msg              string
	ClientID         string
	ResumeToken      string
	Resumed          *bool // nil when sessions are off (no such key)
	PreviousClientID string
}

// ParseWelcome decodes and checks a welcome frame: code 0, msg "success" and
// a clientId of ClientIDPattern.
func ParseWelcome(raw []byte) (Welcome, error) {
	var w struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
		Data struct {
			ClientID         string `json:"clientId"`
			ResumeToken      string `json:"resumeToken"`
			Resumed          *bool  `json:"resumed"`
			PreviousClientID string `json:"previousClientId"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &w); err != nil || w.Code == nil || *w.Code != 0 || w.Msg != "success" {
		return Welcome{Raw: raw}, fmt.Errorf("first frame %s: want {\"code\":0,\"msg\":\"success\",\"data\":{\"clientId\":...}} (%v)", raw, err)
	}
	if !ClientIDPattern.MatchString(w.Data.ClientID) {
		return Welcome{Raw: raw}, fmt.Errorf("clientId %q is not 1-64 characters of [A-Za-z0-9_-]", w.Data.ClientID)
	}
	return Welcome{Raw: raw, Code: 0, Msg: w.Msg, ClientID: w.Data.ClientID, ResumeToken: w.Data.ResumeToken,
		Resumed: w.Data.Resumed, PreviousClientID: w.Data.PreviousClientID}, nil
}

// Received is a frame as the reader got it.
type Received struct {
	Data []byte
	Type int // websocket.TextMessage or BinaryMessage
	At   time.Time
}

// Client is one WebSocket connection. Unless Options.NoReader, a reader
// goroutine queues every frame after the welcome (unbounded) and records how
// the connection ended.
type Client struct {
	Conn     *websocket.Conn
	Response *http.Response // the handshake answer (its body is closed)
	ID       string         // clientId of the welcome ("" with NoWelcome)
	Welcome  Welcome

	mu      sync.Mutex
	frames  []Received
	nonText int
	err     error
	endedAt time.Time
	notify  chan struct{}
	done    chan struct{}
	once    sync.Once
}

// URL is the WebSocket URL of base (ws://, wss://, http:// or https://
// host[:port], or a bare host:port) for systemID with path and query.
func URL(base, path, systemID string, query url.Values) string {
	switch {
	case strings.HasPrefix(base, "http://"), strings.HasPrefix(base, "https://"):
		base = "ws" + strings.TrimPrefix(base, "http")
	case strings.HasPrefix(base, "ws://"), strings.HasPrefix(base, "wss://"):
	default:
		base = "ws://" + base
	}
	if path == "" {
		path = WSPath
	}
	q := url.Values{}
	for k, v := range query {
		q[k] = append([]string(nil), v...)
	}
	// systemId first, as a reader of a log expects it.
	s := base + path + "?systemId=" + url.QueryEscape(systemID)
	if enc := q.Encode(); enc != "" {
		s += "&" + enc
	}
	return s
}

// Dial connects a client of systemID to base (see URL) and, unless
// o.NoWelcome, reads and checks the welcome frame. It does not call t, so
// any goroutine may use it; the caller closes the client.
func Dial(base, systemID string, o Options) (*Client, error) {
	return DialURL(URL(base, o.Path, systemID, o.Query), o)
}

// DialURL is Dial for a complete URL (o.Path and o.Query are ignored).
func DialURL(u string, o Options) (*Client, error) {
	d := o.Dialer
	if d == nil {
		d = DefaultDialer
	}
	if len(o.Subprotocols) > 0 {
		dd := *d
		dd.Subprotocols = o.Subprotocols
		d = &dd
	}
	h := http.Header{}
	for k, v := range o.Header {
		h[k] = append([]string(nil), v...)
	}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	conn, resp, err := d.Dial(u, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake: %v (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	c := &Client{Conn: conn, Response: resp, notify: make(chan struct{}, 1), done: make(chan struct{})}
	if !o.NoWelcome {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, first, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("reading the welcome frame: %w", err)
		}
		_ = conn.SetReadDeadline(time.Time{})
		if typ != websocket.TextMessage {
			conn.Close()
			return nil, fmt.Errorf("first frame is not a text frame (type %d)", typ)
		}
		if c.Welcome, err = ParseWelcome(first); err != nil {
			conn.Close()
			return nil, err
		}
		c.ID = c.Welcome.ClientID
	}
	switch {
	case o.NoPong:
		conn.SetPingHandler(func(string) error {
			if o.OnPing != nil {
				o.OnPing()
			}
			return nil
		})
	case o.OnPing != nil:
		conn.SetPingHandler(func(app string) error {
			o.OnPing()
			err := conn.WriteControl(websocket.PongMessage, []byte(app), time.Now().Add(time.Second))
			if errors.Is(err, websocket.ErrCloseSent) {
				return nil
			}
			return err
		})
	}
	if o.NoReader {
		close(c.done)
	} else {
		go c.readLoop()
	}
	return c, nil
}

// MustDial is Dial that fails t on error and aborts the client when the
// test ends.
func MustDial(t testing.TB, base, systemID string, o Options) *Client {
	t.Helper()
	c, err := Dial(base, systemID, o)
	if err != nil {
		t.Fatalf("dial %s (system %q): %v", base, systemID, err)
	}
	t.Cleanup(c.Abort)
	return c
}

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		typ, b, err := c.Conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.endedAt = time.Now()
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		if typ != websocket.TextMessage {
			c.nonText++
		}
		c.frames = append(c.frames, Received{Data: b, Type: typ, At: time.Now()})
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// Next returns the next queued frame, waiting at most d (ErrNoFrame), or an
// error once the connection ended and nothing is left.
func (c *Client) Next(d time.Duration) ([]byte, error) {
	f, err := c.NextAt(d)
	return f.Data, err
}

// NextAt is Next with the frame's type and arrival time.
func (c *Client) NextAt(d time.Duration) (Received, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if len(c.frames) > 0 {
			f := c.frames[0]
			c.frames[0] = Received{}
			c.frames = c.frames[1:]
			c.mu.Unlock()
			return f, nil
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
			c.mu.Lock()
			empty, err := len(c.frames) == 0, c.err
			c.mu.Unlock()
			if empty {
				return Received{}, fmt.Errorf("connection ended: %w", err)
			}
		case <-timer.C:
			return Received{}, ErrNoFrame
		}
	}
}

// Pending is the number of frames received and not yet taken.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// NonText is how many binary data frames arrived so far.
func (c *Client) NonText() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nonText
}

// Done is closed when the reader ended (at once with NoReader).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is open).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// EndedAt is when the reader saw the connection end (zero while open).
func (c *Client) EndedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endedAt
}

// End waits at most d for the connection to end and returns why (ok false
// on timeout).
func (c *Client) End(d time.Duration) (err error, ok bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c.done:
		return c.Err(), true
	case <-timer.C:
		return nil, false
	}
}

// Drain waits at most d for the connection to end and returns the frames
// still queued with how it ended (ok false on timeout).
func (c *Client) Drain(d time.Duration) (frames [][]byte, err error, ok bool) {
	err, ok = c.End(d)
	c.mu.Lock()
	for _, f := range c.frames {
		frames = append(frames, f.Data)
	}
	c.frames = nil
	c.mu.Unlock()
	return frames, err, ok
}

// CloseFrames waits at most d for the connection to end and returns the
// close code (see CloseCode), the frames still queued and how it ended.
func (c *Client) CloseFrames(d time.Duration) (int, [][]byte, error) {
	frames, err, ok := c.Drain(d)
	if !ok {
		return StillOpen, frames, errors.New("connection still open")
	}
	return CodeOf(err), frames, err
}

// Close codes CloseCode returns when there is none.
const (
	NoCloseFrame = -1 // the connection ended without a close frame
	StillOpen    = -2 // the connection did not end within the wait
)

// CloseCode is the close code the server sent, NoCloseFrame or StillOpen.
func (c *Client) CloseCode(d time.Duration) (int, error) {
	err, ok := c.End(d)
	if !ok {
		return StillOpen, errors.New("connection still open")
	}
	return CodeOf(err), err
}

// CodeOf is the close code in a read error (NoCloseFrame when it has none).
func CodeOf(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return NoCloseFrame
}

// ExpectClose requires the server to close with code within d.
func (c *Client) ExpectClose(t testing.TB, code int, d time.Duration) {
	t.Helper()
	got, err := c.CloseCode(d)
	if got != code {
		t.Errorf("client %s: want close code %d within %v, got %d (%v)", c.ID, code, d, got, err)
	}
}

// Close sends a close frame with code 1000 and closes the socket; Abort
// only closes the socket. Both wait (5 s at most) for the reader to end.
func (c *Client) Close() {
	_ = c.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.Abort()
}

// Abort closes the socket without a close frame.
func (c *Client) Abort() {
	c.once.Do(func() { _ = c.Conn.Close() })
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
	}
}

// Refused dials and requires the refusal of an accepted upgrade: exactly
// one text frame, the error envelope with code and a msg, then a close
// frame with closeCode. what names the case in errors.
func Refused(t testing.TB, base, systemID string, o Options, code, closeCode int, what string) {
	t.Helper()
	o.NoWelcome = true
	c, err := Dial(base, systemID, o)
	if err != nil {
		t.Errorf("%s: the upgrade must be answered (then refused with a frame), got %v", what, err)
		return
	}
	defer c.Abort()
	CheckRefusal(t, c, code, closeCode, what)
}

// CheckRefusal requires c (dialled with NoWelcome) to get exactly one text
// frame, the error envelope with code and a msg, then closeCode.
func CheckRefusal(t testing.TB, c *Client, code, closeCode int, what string) {
	t.Helper()
	cc, got, err := c.CloseFrames(5 * time.Second)
	if len(got) != 1 {
		t.Errorf("%s: want exactly one error frame before the close, got %d: %q (%v)", what, len(got), got, err)
	} else {
		var e struct {
			Code *int   `json:"code"`
			Msg  string `json:"msg"`
		}
		if jerr := json.Unmarshal(got[0], &e); jerr != nil || e.Code == nil || *e.Code != code || e.Msg == "" {
			t.Errorf("%s: error frame %s, want code %d with a msg", what, got[0], code)
		}
		if n := c.NonText(); n > 0 {
			t.Errorf("%s: the error frame is not a text frame", what)
		}
	}
	if cc != closeCode {
		t.Errorf("%s: want close code %d after the error frame, got %d (%v)", what, closeCode, cc, err)
	}
}
