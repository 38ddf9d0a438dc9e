package servers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawDeflateClient does the opening handshake itself, offering
// permessage-deflate, so the test sees the frames as they are on the wire.
type rawDeflateClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
	id string
}

func dialRawDeflate(t *testing.T, h *harness) *rawDeflateClient {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "GET /?systemId=s1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("handshake %d, extensions %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	c := &rawDeflateClient{t: t, nc: nc, br: br}
	first, payload := c.frame()
	if first != 0x81 {
		t.Fatalf("welcome first byte %#x, want an uncompressed text frame", first)
	}
	var w welcome
	if err := json.Unmarshal(payload, &w); err != nil {
		t.Fatal(err)
	}
	c.id = w.Data.ClientID
	return c
}

// frame reads one server frame: its first byte and payload.
func (c *rawDeflateClient) frame() (byte, []byte) {
	c.t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		c.t.Fatal(err)
	}
	n := int(hdr[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(c.br, b[:])
		n = int(b[0])<<8 | int(b[1])
	case 127:
		c.t.Fatal("unexpectedly large frame")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		c.t.Fatal(err)
	}
	return hdr[0], p
}

func TestCompressedBroadcast(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.Compression = true; o.MembershipEvents = false })
	ctx := context.Background()
	a, b := dialRawDeflate(t, h), dialRawDeflate(t, h)
	plain := h.dial("s1") // offers no compression
	for _, id := range []string{a.id, b.id, plain.id} {
		if err := h.node.BindToGroup(ctx, "s1", id, "g", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	data := `{"text":"` + strings.Repeat("compress me ", 50) + `"}`
	res, err := h.node.SendToGroup(ctx, "s1", "g", msg(data))
	if err != nil || res.Recipients != 3 {
		t.Fatalf("%+v %v", res, err)
	}
	for _, c := range []*rawDeflateClient{a, b} {
		first, p := c.frame()
		if first != 0xC1 {
			t.Fatalf("first byte %#x, want a compressed text frame (FIN|RSV1|text)", first)
		}
		if len(p) >= len(data) {
			t.Fatalf("compressed payload %d bytes, data %d", len(p), len(data))
		}
		out, err := inflate(p, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var got pushed
		if err := json.Unmarshal(out, &got); err != nil || string(got.Data) != data || got.MessageID != res.MessageID {
			t.Fatalf("inflated %s: %v", out, err)
		}
	}
	if p := plain.next(); string(p.Data) != data {
		t.Fatalf("uncompressed client got %+v", p)
	}
}

// One broadcast is compressed once: every compressing recipient gets the
// same bytes.
func TestCompressedOnce(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.Compression = true })
	x := &Client{hub: h.node.hub}
	x.w.deflate = true
	y := &Client{hub: h.node.hub}
	y.w.deflate = true
	f := messageFrame("m", msg(`"abc"`))
	var z frame
	fx, fy := x.compressed(f, &z), y.compressed(f, &z)
	if &fx[0] != &fy[0] || fx[0] != 0xC1 {
		t.Fatal("the compressed frame was built twice (or not at all)")
	}
	if p := pingFrame; &x.compressed(p, &z)[0] != &p[0] {
		t.Fatal("a control frame was compressed")
	}
}

// A client that compresses its own messages (an ack here) is understood.
func TestCompressedAckFromClient(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Hub.Compression = true })
	d := websocket.Dialer{EnableCompression: true}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(h.srv.URL, "http")+"/?systemId=s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatal("compression not negotiated")
	}
	ws.EnableWriteCompression(true)
	c := &wsClient{t: t, ws: ws}
	var w welcome
	c.readJSON(&w)
	go func() {
		var f ackedFrame
		_, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		_ = json.Unmarshal(b, &f)
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"ack":"`+f.MessageID+`"}`))
	}()
	res, err := h.node.SendToClientAck(context.Background(), "s1", w.Data.ClientID, msg(`"x"`), AckRequest{Timeout: 5 * time.Second})
	if err != nil || !res.Acked {
		t.Fatalf("%+v %v", res, err)
	}
}
