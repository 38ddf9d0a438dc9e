package servers

import (
	"encoding/binary"
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
		unmask(p, key)
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
	}
	h := newHarness(t, func(o *Options) { o.Hub.ReadLimit = 100 })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := h.dial("s1")
			if _, err := cl.ws.UnderlyingConn().Write(c.raw); err != nil {
				t.Fatal(err)
			}
			if got := cl.closeCode(5 * time.Second); got != c.close {
				t.Fatalf("close code %d, want %d", got, c.close)
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
