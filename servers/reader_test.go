package servers

import (
	"encoding/binary"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/define"
)

// rawFrame builds a client frame; masked as clients must unless told not to.
func rawFrame(b0 byte, payload []byte, masked bool, lenOverride int64) []byte {
	n := int64(len(payload))
	if lenOverride >= 0 {
		n = lenOverride
	}
	out := []byte{b0}
	mbit := byte(0)
	if masked {
		mbit = 0x80
	}
	switch {
	case n <= 125:
		out = append(out, mbit|byte(n))
	case n <= 0xFFFF:
		out = append(out, mbit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if masked {
		key := []byte{1, 2, 3, 4}
		out = append(out, key...)
		p := append([]byte(nil), payload...)
		for i := range p {
			p[i] ^= key[i&3]
		}
		payload = p
	}
	return append(out, payload...)
}

func TestReaderProtocol(t *testing.T) {
	cases := []struct {
		name  string
		raw   []byte
		close int
	}{
		{"unmasked frame", rawFrame(0x81, []byte("hi"), false, -1), 1002},
		{"reserved bits", rawFrame(0xC1, []byte("hi"), true, -1), 1002},
		{"unknown opcode", rawFrame(0x83, nil, true, -1), 1002},
		{"fragmented control", rawFrame(0x09, nil, true, -1), 1002},
		{"continuation first", rawFrame(0x80, []byte("x"), true, -1), 1002},
		{"huge length announced", rawFrame(0x82, nil, true, 1<<40), define.CloseTooBig},
		{"fragments over the limit", append(rawFrame(0x01, make([]byte, 60), true, -1),
			rawFrame(0x80, make([]byte, 60), true, -1)...), define.CloseTooBig},
		{"close echo", rawFrame(0x88, []byte{0x0F, 0xA0, 'b', 'y', 'e'}, true, -1), 4000},
		{"close without code", rawFrame(0x88, nil, true, -1), define.CloseNormal},
		{"close bad code", rawFrame(0x88, []byte{0x03, 0xED}, true, -1), 1002},
		{"close code 1012 echoed", rawFrame(0x88, []byte{0x03, 0xF4}, true, -1), 1012},
		{"close code 1013 echoed", rawFrame(0x88, []byte{0x03, 0xF5}, true, -1), 1013},
		{"close code 1014 echoed", rawFrame(0x88, []byte{0x03, 0xF6, 'g', 'w'}, true, -1), 1014},
		{"close code 1015 refused", rawFrame(0x88, []byte{0x03, 0xF7}, true, -1), 1002},
		{"close reason not UTF-8", rawFrame(0x88, []byte{0x03, 0xE8, 0xFF, 0xFE}, true, -1), 1007},
		{"close with 1-byte payload", rawFrame(0x88, []byte{0x03}, true, -1), 1002},
		{"non-minimal length", append([]byte{0x82, 0xFE, 0, 5, 1, 2, 3, 4}, make([]byte, 5)...), 1002},
		{"2^63 length", append([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}, 1, 2, 3, 4), 1002},
	}
	h := newHarness(t, func(o *Options) { o.Hub.ReadLimit = 100 })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := h.dial("s1")
			nc := cl.ws.UnderlyingConn()
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := nc.Write(c.raw); err != nil {
				t.Fatal(err)
			}
			// Read raw frames: gorilla's client refuses some registered codes
			// (1014).
			for i := 0; i < 100; i++ {
				op, p, err := readServerFrame(nc)
				if err != nil {
					t.Fatalf("no close frame: %v", err)
				}
				if op != opClose {
					continue
				}
				if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != c.close {
					t.Fatalf("close payload %q, want code %d", p, c.close)
				}
				return
			}
		})
	}
}

func TestReaderPingAndFragments(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.ReadLimit = 100 })
	cl := h.dial("s1")
	pong := make(chan string, 1)
	cl.ws.SetPongHandler(func(s string) error { pong <- s; return nil })
	// A fragmented message within the limit, with a ping between fragments.
	raw := append(rawFrame(0x01, make([]byte, 40), true, -1), rawFrame(0x89, []byte("p1"), true, -1)...)
	raw = append(raw, rawFrame(0x80, make([]byte, 40), true, -1)...)
	if _, err := cl.ws.UnderlyingConn().Write(raw); err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = cl.ws.ReadMessage() }()
	select {
	case s := <-pong:
		if s != "p1" {
			t.Fatalf("pong payload %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
	if err := cl.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pong:
	case <-time.After(5 * time.Second):
		t.Fatal("no pong for the second ping: the connection did not survive the fragments")
	}
}

// After refusing a frame the server reads on until the client's close, so
// the socket is not closed with unread bytes (which the kernel answers with
// a reset): the client can send a whole 1 MiB frame, read the 1009, answer
// it, and then sees a clean end of stream.
func TestReaderLingersAfterRefusing(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.ReadLimit = 100 })
	cl := h.dial("s1")
	nc := cl.ws.UnderlyingConn()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	wrote := make(chan error, 1)
	go func() {
		_, err := nc.Write(rawFrame(0x82, make([]byte, 1<<20), true, -1))
		wrote <- err
	}()
	op, payload, err := readServerFrame(nc)
	if err != nil || op != opClose || len(payload) < 2 || binary.BigEndian.Uint16(payload) != define.CloseTooBig {
		t.Fatalf("want a 1009 close frame, got op %x %q (%v)", op, payload, err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the server did not read the rest of the frame: %v", err)
	}
	if _, err := nc.Write(rawFrame(0x88, payload[:2], true, -1)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if n, err := nc.Read(b[:]); n != 0 || err != io.EOF {
		t.Fatalf("after the close handshake: %d bytes, %v (want a clean EOF, not a reset)", n, err)
	}
}

// readServerFrame reads one unmasked server frame.
func readServerFrame(r io.Reader) (byte, []byte, error) {
	var h [10]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[2:4]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(r, h[2:10]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint64(h[2:10]))
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return h[0] & 0x0F, p, err
}

// An idle connection's reader waits with the smallest goroutine stack
// (2 KiB): the stack is most of an idle connection's memory, and one frame
// too many on the waiting path doubles it. Run without -race (its
// instrumentation makes every stack larger): make unit does.
func TestReaderStackStaysSmall(t *testing.T) {
	if raceEnabled {
		t.Skip("stack sizes differ under the race detector; make unit runs this test without it")
	}
	h := newHarness(t, nil)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, g0 := ms.StackInuse, runtime.NumGoroutine()
	const n = 500
	for i := 0; i < n; i++ {
		h.dial("s1")
	}
	// Every reader has started (it is started right after the welcome
	// frame), then give them a moment to reach their wait: there is no
	// event for "parked".
	for i := 0; i < 500 && runtime.NumGoroutine() < g0+n; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	runtime.ReadMemStats(&ms)
	if per := (ms.StackInuse - base) / n; per > 3<<10 {
		t.Fatalf("%d bytes of goroutine stack per idle connection, want 2 KiB (the reader's stack grew)", per)
	}
}
