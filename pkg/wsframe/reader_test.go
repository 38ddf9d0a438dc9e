package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// cf builds a client frame: first byte b0, masked with a fixed key unless
// unmasked; length is the payload's unless n >= 0 (then only announced).
func cf(b0 byte, payload string, opts ...func(*frameOpts)) []byte {
	o := frameOpts{n: -1, masked: true}
	for _, f := range opts {
		f(&o)
	}
	n := int64(len(payload))
	if o.n >= 0 {
		n = o.n
	}
	mbit := byte(0)
	if o.masked {
		mbit = 0x80
	}
	out := []byte{b0}
	switch {
	case o.ext == 2 || (o.ext == 0 && n > 125 && n <= 0xFFFF):
		out = append(out, mbit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	case o.ext == 8 || (o.ext == 0 && n > 0xFFFF):
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	default:
		out = append(out, mbit|byte(n))
	}
	p := []byte(payload)
	if o.masked {
		key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
		out = append(out, key[:]...)
		mask(key, 0, p)
	}
	return append(out, p...)
}

type frameOpts struct {
	n      int64
	ext    int
	masked bool
}

func announce(n int64) func(*frameOpts) { return func(o *frameOpts) { o.n = n } }
func extLen(e int) func(*frameOpts)     { return func(o *frameOpts) { o.ext = e } }
func unmasked(o *frameOpts)             { o.masked = false }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func closePayload(code int, reason string) string {
	return string(binary.BigEndian.AppendUint16(nil, uint16(code))) + reason
}

// readAll runs a reader over src as a server would that wants every
// payload: each message and control frame becomes an event; the reader's
// final error ends the list.
func readAll(r *Reader, wantPayloads bool) ([]string, error) {
	var events []string
	var msg []byte
	for i := 0; i < 10000; i++ {
		f, err := r.Next()
		if err != nil {
			return events, err
		}
		switch {
		case f.IsControl():
			events = append(events, fmt.Sprintf("%s:%s", opName(f.Op), f.Payload))
			if f.Op == OpClose {
				return events, nil
			}
		default:
			if wantPayloads {
				if msg, err = r.ReadPayload(msg); err != nil {
					return events, err
				}
			}
			if f.Fin {
				events = append(events, fmt.Sprintf("%s:%s", opName(r.MessageType()), msg))
				msg = msg[:0]
			}
		}
	}
	return events, errors.New("too many frames")
}

func opName(op byte) string {
	return map[byte]string{OpText: "text", OpBinary: "binary", OpClose: "close", OpPing: "ping", OpPong: "pong"}[op]
}

func TestReader(t *testing.T) {
	big := strings.Repeat("x", 70000)
	cases := []struct {
		name   string
		in     []byte
		limit  int64
		compr  bool
		events []string
		err    error // nil: the input ended cleanly (io.EOF)
	}{
		{name: "text", in: cf(0x81, "hello"), events: []string{"text:hello"}},
		{name: "binary", in: cf(0x82, "\x00\xff"), events: []string{"binary:\x00\xff"}},
		{name: "empty text", in: cf(0x81, ""), events: []string{"text:"}},
		{name: "16-bit length", in: cf(0x82, strings.Repeat("y", 300)), events: []string{"binary:" + strings.Repeat("y", 300)}},
		{name: "64-bit length", in: cf(0x82, big), events: []string{"binary:" + big}},
		{name: "fragments with a ping between", in: cat(cf(0x01, "hel"), cf(0x89, "p"), cf(0x00, "l"), cf(0x80, "o")),
			events: []string{"ping:p", "text:hello"}},
		{name: "pong and close", in: cat(cf(0x8A, "x"), cf(0x88, closePayload(1000, "bye"))),
			events: []string{"pong:x", "close:" + closePayload(1000, "bye")}},
		{name: "rune split over fragments", in: cat(cf(0x01, "a\xe2"), cf(0x00, "\x82"), cf(0x80, "\xacb")), events: []string{"text:a€b"}},
		{name: "text at the limit", in: cf(0x81, "12345"), limit: 5, events: []string{"text:12345"}},
		{name: "compressed first frame allowed", in: cat(cf(0x41, "ab"), cf(0x80, "c")), compr: true, events: []string{"text:abc"}},

		{name: "truncated header", in: cf(0x81, "hello")[:1], err: io.ErrUnexpectedEOF},
		{name: "truncated payload", in: cf(0x81, "hello")[:8], err: io.ErrUnexpectedEOF},
		{name: "unmasked", in: cf(0x81, "hi", unmasked), err: ErrProtocol},
		{name: "RSV1 without extension", in: cf(0xC1, "hi"), err: ErrProtocol},
		{name: "RSV2", in: cf(0xA1, "hi"), err: ErrProtocol},
		{name: "RSV3", in: cf(0x91, "hi"), compr: true, err: ErrProtocol},
		{name: "RSV1 on a continuation", in: cat(cf(0x41, "a"), cf(0xC0, "b")), compr: true, err: ErrProtocol},
		{name: "RSV1 on a control frame", in: cf(0xC9, ""), compr: true, err: ErrProtocol},
		{name: "reserved data opcode", in: cf(0x83, ""), err: ErrProtocol},
		{name: "reserved control opcode", in: cf(0x8B, ""), err: ErrProtocol},
		{name: "fragmented ping", in: cf(0x09, "p"), err: ErrProtocol},
		{name: "ping of 126 bytes", in: cf(0x89, strings.Repeat("p", 126)), err: ErrProtocol},
		{name: "continuation first", in: cf(0x80, "x"), err: ErrProtocol},
		{name: "text inside a fragmented message", in: cat(cf(0x01, "a"), cf(0x81, "b")), err: ErrProtocol},
		{name: "2^63-1 length", in: cf(0x82, "", announce(1<<63-1)), limit: 1 << 20, err: ErrTooBig},
		{name: "2^63 length (MSB set)", in: append([]byte{0x82, 0xFF}, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), err: ErrProtocol},
		{name: "16-bit length not minimal", in: cf(0x81, "x", extLen(2)), err: ErrProtocol},
		{name: "64-bit length not minimal", in: cf(0x81, "x", extLen(8)), err: ErrProtocol},
		{name: "over the limit", in: cf(0x81, "123456"), limit: 5, err: ErrTooBig},
		{name: "huge announced length", in: cf(0x82, "", announce(1<<40)), limit: 8192, err: ErrTooBig},
		{name: "fragments over the limit", in: cat(cf(0x01, "123"), cf(0x80, "456")), limit: 5, events: nil, err: ErrTooBig},
		{name: "invalid UTF-8", in: cf(0x81, "a\xffb"), err: ErrInvalidUTF8},
		{name: "surrogate half", in: cf(0x81, "\xed\xa0\x80"), err: ErrInvalidUTF8},
		{name: "rune cut at the message end", in: cat(cf(0x01, "a"), cf(0x80, "\xe2\x82")), err: ErrInvalidUTF8},
		{name: "invalid UTF-8 in binary is fine", in: cf(0x82, "\xff"), events: []string{"binary:\xff"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(c.in))
			r.Limit, r.Compression = c.limit, c.compr
			events, err := readAll(r, true)
			if strings.Join(events, "|") != strings.Join(c.events, "|") {
				t.Errorf("events %q, want %q", events, c.events)
			}
			want := c.err
			if want == nil && (len(events) == 0 || !strings.HasPrefix(events[len(events)-1], "close:")) {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Errorf("error %v, want %v", err, want)
			}
			if _, again := r.Next(); err != nil && again != err {
				t.Errorf("error not sticky: %v then %v", err, again)
			}
		})
	}
}

// Payloads the caller does not read are skipped, and not checked for UTF-8.
func TestReaderSkipsPayloads(t *testing.T) {
	in := cat(cf(0x81, "a\xffb"), cf(0x01, strings.Repeat("z", 1000)), cf(0x89, "p"), cf(0x80, "tail"), cf(0x88, ""))
	events, err := readAll(NewReader(bytes.NewReader(in)), false)
	if err != nil || strings.Join(events, "|") != "text:|ping:p|text:|close:" {
		t.Fatalf("events %q, error %v", events, err)
	}
	// A text message read in part is not judged on the part.
	r := NewReader(bytes.NewReader(cat(cf(0x81, "ab\xe2"), cf(0x81, "ok"))))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	var two [2]byte
	if _, err := io.ReadFull(r, two[:]); err != nil {
		t.Fatal(err)
	}
	f, err := r.Next()
	if err != nil || f.Op != OpText {
		t.Fatalf("frame %+v, error %v", f, err)
	}
}

// The reader works whatever the source's read sizes: one byte at a time
// through a pipe, as a trickling client sends them.
func TestReaderOneByteWrites(t *testing.T) {
	in := cat(cf(0x01, "h€"), cf(0x89, "p"), cf(0x80, strings.Repeat("é", 200)), cf(0x88, closePayload(4000, "done")))
	srv, cli := net.Pipe()
	defer srv.Close()
	go func() {
		defer cli.Close()
		for i := range in {
			if _, err := cli.Write(in[i : i+1]); err != nil {
				return
			}
		}
	}()
	_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	events, err := readAll(NewReader(srv), true)
	want := "ping:p|text:h€" + strings.Repeat("é", 200) + "|close:" + closePayload(4000, "done")
	if err != nil || strings.Join(events, "|") != want {
		t.Fatalf("events %q, error %v", events, err)
	}
}

// Drain finds the peer's close after any verdict, whether the offending
// frame's header was read in full or not.
func TestDrain(t *testing.T) {
	after := cat(cf(0x81, "late"), cf(0x8A, ""), cf(0x88, closePayload(1000, "")), []byte("never read"))
	cases := []struct {
		name  string
		bad   []byte
		limit int64
	}{
		{"unmasked frame", cf(0x82, strings.Repeat("u", 300), unmasked), 0},
		{"reserved opcode", cf(0x83, "r"), 0},
		{"fragmented ping", cf(0x09, "p"), 0},
		{"RSV1", cf(0xC2, strings.Repeat("c", 70000)), 0},
		{"over the limit", cf(0x82, strings.Repeat("b", 70000)), 1000},
		{"non-minimal length", cf(0x82, "x", extLen(8)), 0},
		{"invalid UTF-8", cf(0x81, "\xff"+strings.Repeat("t", 500)), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := bytes.NewReader(cat(c.bad, after))
			r := NewReader(src)
			r.Limit = c.limit
			_, err := readAll(r, true)
			if CloseCodeOf(err) == 0 {
				t.Fatalf("no verdict: %v", err)
			}
			if err := r.Drain(); err != nil {
				t.Fatalf("drain: %v", err)
			}
			if src.Len() != len("never read") {
				t.Fatalf("drain stopped with %d bytes left, want exactly the bytes after the close", src.Len())
			}
		})
	}
	// The bad frame is itself a close frame.
	src := bytes.NewReader(cat(cf(0x88, closePayload(1000, ""), unmasked), []byte("x")))
	r := NewReader(src)
	if _, err := r.Next(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("error %v", err)
	}
	if err := r.Drain(); err != nil || src.Len() != 1 {
		t.Fatalf("drain: %v, %d left", err, src.Len())
	}
	// DiscardMessage reads exactly the rest of the refused message.
	next := cf(0x81, "next")
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"one frame", cf(0x82, strings.Repeat("b", 70000))},
		{"fragments", cat(cf(0x02, strings.Repeat("b", 90)), cf(0x00, strings.Repeat("b", 90)), cf(0x89, "ping"),
			cf(0x00, strings.Repeat("b", 9000)), cf(0x80, "end"))},
		{"refused control frame", cf(0x09, "fragmented ping")},
		{"refused first fragment", cat(cf(0x22, "rsv2"), cf(0x80, "rest"))},
	} {
		src = bytes.NewReader(cat(c.in, next))
		r = NewReader(src)
		r.Limit = 100
		if _, err := readAll(r, true); CloseCodeOf(err) == 0 {
			t.Fatalf("%s: no verdict: %v", c.name, err)
		}
		if err := r.DiscardMessage(1 << 20); err != nil || src.Len() != len(next) {
			t.Fatalf("%s: discard: %v, %d left, want %d", c.name, err, src.Len(), len(next))
		}
	}
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"longer than the cap", cf(0x82, strings.Repeat("b", 70000))},
		{"2^63 length", []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5}},
	} {
		src = bytes.NewReader(c.in)
		r = NewReader(src)
		r.Limit = 100
		_, _ = r.Next()
		left := src.Len()
		if err := r.DiscardMessage(1000); err != ErrFrameTooLong || src.Len() < left-4 {
			t.Fatalf("%s: discard %v, read %d bytes", c.name, err, left-src.Len())
		}
	}
	// Without a close, Drain reads to the end.
	r = NewReader(bytes.NewReader(cf(0x83, "")))
	_, _ = r.Next()
	if err := r.Drain(); err != io.EOF {
		t.Fatalf("drain to the end: %v", err)
	}
}

func TestUTF8Checker(t *testing.T) {
	texts := []string{"", "ascii", "é€𝄞", "a\xffb", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\x80", "\xe0\x80\x80",
		"€", "\xe2\x82", "\xf0\x9d\x84", "x\xf0\x9d\x84\x9ey", "\xf5", "\xc2", "\xe2\x28\xa1"}
	for _, s := range texts {
		for split := 0; split <= len(s); split++ {
			for split2 := split; split2 <= len(s); split2++ {
				var u utf8Checker
				ok := u.write([]byte(s[:split])) && u.write([]byte(s[split:split2])) && u.write([]byte(s[split2:])) && u.complete()
				if want := isUTF8(s); ok != want {
					t.Errorf("%q split at %d,%d: valid %v, want %v", s, split, split2, ok, want)
				}
			}
		}
	}
}

func isUTF8(s string) bool {
	return strings.ToValidUTF8(s, "\x00invalid") == s && !strings.Contains(s, "\x00invalid")
}

func TestParseClose(t *testing.T) {
	for code := 0; code < 5100; code++ {
		want := (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
		_, _, err := ParseClose([]byte(closePayload(code, "")))
		if (err == nil) != want {
			t.Fatalf("code %d: error %v, valid %v", code, err, want)
		}
		if err != nil && CloseCodeOf(err) != CloseProtocolError {
			t.Fatalf("code %d answered with %d", code, CloseCodeOf(err))
		}
	}
	if code, reason, err := ParseClose(nil); code != CloseNoStatus || reason != nil || err != nil {
		t.Fatalf("empty close: %d %q %v", code, reason, err)
	}
	if _, _, err := ParseClose([]byte{3}); CloseCodeOf(err) != CloseProtocolError {
		t.Fatalf("1-byte close: %v", err)
	}
	if _, _, err := ParseClose([]byte(closePayload(1000, "\xff\xfe"))); CloseCodeOf(err) != CloseInvalidPayload {
		t.Fatalf("bad reason: %v", err)
	}
	if code, reason, err := ParseClose([]byte(closePayload(1013, "later"))); code != 1013 || string(reason) != "later" || err != nil {
		t.Fatalf("1013: %d %q %v", code, reason, err)
	}
}

// Every idle connection holds one Reader: keep it in a small size class.
func TestReaderSize(t *testing.T) {
	if n := unsafe.Sizeof(Reader{}); n > 96 {
		t.Fatalf("Reader is %d bytes; an idle connection keeps one, keep it within 96", n)
	}
}
