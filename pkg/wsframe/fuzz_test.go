package wsframe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// outcome is what a reader made of a byte stream: the complete data
// messages in order, then how the stream ended.
type outcome struct {
	msgs []string // "t:" or "b:" + payload
	end  string   // "close:<code>", "reject", "eof"
	// utf8 is set when the reader rejected a text message for its UTF-8
	// (gorilla does not check text; it is compared separately).
	utf8 bool
	// lenient is set where gorilla departs from RFC 6455 (it accepts a
	// length not in its shortest form and a 1-byte close payload, and
	// refuses the later registered close code 1014): the streams are not
	// compared from there.
	lenient bool
}

func (o outcome) String() string {
	var b strings.Builder
	for _, m := range o.msgs {
		if len(m) > 40 {
			m = fmt.Sprintf("%s...(%d bytes)", m[:40], len(m))
		}
		fmt.Fprintf(&b, "%q ", m)
	}
	return b.String() + "end " + o.end
}

func readOurs(in []byte, limit int64) outcome {
	r := NewReader(bytes.NewReader(in))
	r.Limit = limit
	var o outcome
	var msg []byte
	for i := 0; ; i++ {
		f, err := r.Next()
		if err == nil && !f.IsControl() {
			msg, err = r.ReadPayload(msg)
		}
		if err != nil {
			switch {
			case CloseCodeOf(err) == 0:
				o.end = "eof"
			case errors.Is(err, errInvalidUTF8Text):
				o.end, o.utf8 = "reject", true
			case errors.Is(err, errNonMinimal):
				o.end, o.lenient = "reject", true
			default:
				o.end = "reject"
			}
			return o
		}
		switch {
		case f.Op == OpClose:
			code, _, err := ParseClose(f.Payload)
			switch {
			case errors.Is(err, errCloseLen):
				o.end, o.lenient = "reject", true
			case err != nil:
				o.end = "reject"
			case code == CloseBadGateway:
				// Registered after gorilla's list of codes was written.
				o.end, o.lenient = fmt.Sprintf("close:%d", code), true
			default:
				o.end = fmt.Sprintf("close:%d", code)
			}
			return o
		case !f.IsControl() && f.Fin:
			o.msgs = append(o.msgs, map[byte]string{OpText: "t:", OpBinary: "b:"}[r.MessageType()]+string(msg))
			msg = msg[:0]
		}
	}
}

// fakeConn is a net.Conn that reads the fuzz input and swallows writes.
type fakeConn struct {
	r io.Reader
}

func (c *fakeConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *fakeConn) Close() error                       { return nil }
func (c *fakeConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(t time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

// hijacker is the ResponseWriter gorilla's Upgrade takes over.
type hijacker struct {
	httptest.ResponseRecorder
	conn net.Conn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

var fuzzUpgrader = websocket.Upgrader{ReadBufferSize: 256, WriteBufferSize: 256}

// readGorilla runs the same bytes through gorilla/websocket's server-side
// reader.
func readGorilla(t *testing.T, in []byte, limit int64) outcome {
	req := httptest.NewRequest(http.MethodGet, "/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	w := &hijacker{conn: &fakeConn{r: bytes.NewReader(in)}}
	ws, err := fuzzUpgrader.Upgrade(w, req, nil)
	if err != nil {
		t.Fatalf("gorilla upgrade: %v", err)
	}
	ws.SetReadLimit(limit)
	var o outcome
	for i := 0; ; i++ {
		typ, p, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
				o.end = "eof" // gorilla's name for input that ran out
			case errors.As(err, &ce):
				o.end = fmt.Sprintf("close:%d", ce.Code)
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				o.end = "eof"
			default:
				o.end = "reject"
			}
			return o
		}
		o.msgs = append(o.msgs, map[int]string{websocket.TextMessage: "t:", websocket.BinaryMessage: "b:"}[typ]+string(p))
	}
}

func fuzzSeeds() [][]byte {
	return [][]byte{
		cf(0x81, "hello"),
		cat(cf(0x01, "hel"), cf(0x89, "p"), cf(0x80, "lo"), cf(0x88, closePayload(1000, "bye"))),
		cat(cf(0x82, strings.Repeat("b", 200)), cf(0x8A, ""), cf(0x88, "")),
		cf(0x81, "hi", unmasked),
		cf(0xC1, "x"),
		cf(0x83, ""),
		cf(0x09, "p"),
		cf(0x80, "x"),
		cat(cf(0x01, "a"), cf(0x81, "b")),
		cf(0x89, strings.Repeat("p", 126)),
		cf(0x82, "", announce(1<<63-1)),
		append([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}, 1, 2, 3, 4),
		cf(0x88, closePayload(1012, "")),
		cf(0x88, closePayload(1005, "")),
		cf(0x88, closePayload(1000, "\xff")),
		cf(0x81, "a\xffb"),
		cf(0x82, strings.Repeat("z", 70000)),
	}
}

// FuzzReadFrame feeds the same bytes to this reader and to gorilla's
// server-side reader and compares them where RFC 6455 leaves no choice: the
// same messages with the same payloads, and the same end (a close with the
// same code, a rejection, or running out of input).
func FuzzReadFrame(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, uint16(0))
		f.Add(s, uint16(100))
	}
	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		ours := readOurs(in, int64(limit))
		theirs := readGorilla(t, in, int64(limit))

		// Drain never fails to end, whatever came before.
		r := NewReader(bytes.NewReader(in))
		r.Limit = int64(limit)
		_, _ = readAll(r, true)
		_ = r.Drain()

		n := len(ours.msgs)
		if len(theirs.msgs) < n {
			t.Fatalf("gorilla delivered fewer messages\n ours    %v\n gorilla %v", ours, theirs)
		}
		for i := 0; i < n; i++ {
			if ours.msgs[i] != theirs.msgs[i] {
				t.Fatalf("message %d differs\n ours    %v\n gorilla %v", i, ours, theirs)
			}
		}
		switch {
		case ours.lenient:
			return
		case ours.utf8:
			// Gorilla does not check text; the message it delivered in
			// place of the rejection must be the invalid one.
			if len(theirs.msgs) > n {
				m := theirs.msgs[n]
				if !strings.HasPrefix(m, "t:") || utf8.ValidString(m[2:]) {
					t.Fatalf("rejected as invalid UTF-8, but gorilla's message is %q\n ours    %v\n gorilla %v", m, ours, theirs)
				}
			}
			return
		}
		if len(theirs.msgs) != n || ours.end != theirs.end {
			t.Fatalf("verdicts differ\n ours    %v\n gorilla %v", ours, theirs)
		}
	})
}

// FuzzAppendString checks that AppendString writes valid UTF-8 that
// encoding/json decodes to what encoding/json itself would carry (invalid
// UTF-8 mapped to U+FFFD).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"\\", "\x00\x1f\x7f", "é€𝄞", "a\xffb", "\xe2\x82", "\u2028\u2029", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString([]byte("pre"), s)
		if !bytes.HasPrefix(out, []byte("pre")) {
			t.Fatalf("prefix lost: %q", out)
		}
		out = out[3:]
		if !utf8.Valid(out) {
			t.Fatalf("AppendString(%q) = %q: not UTF-8", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, out, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("AppendString(%q) decodes to %q, encoding/json carries %q", s, got, want)
		}
	})
}
