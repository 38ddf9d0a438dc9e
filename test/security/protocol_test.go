package security

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// Black-box checks of the WebSocket protocol details real clients rely on:
// close codes, the opening handshake, subprotocols and the access log.

// rawHandshake sends an opening handshake written by hand (proto is
// "HTTP/1.1" or "HTTP/1.0"; header lines end with \r\n) and returns the
// answer; the body is read unless the answer is a 101.
func (n *node) rawHandshake(t *testing.T, proto, headers string) *wstest.Resp {
	t.Helper()
	nc, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + mainWSPath + "?systemId=proto " + proto + "\r\nHost: 127.0.0.1:" + strconv.Itoa(n.Port) + "\r\n" + headers + "\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("%s handshake: %v", proto, err)
	}
	defer resp.Body.Close()
	r := &wstest.Resp{Method: "GET", Path: mainWSPath, Status: resp.StatusCode, Header: resp.Header}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		r.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	}
	return r
}

const (
	hsUpgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	hsVersion = "Sec-WebSocket-Version: 13\r\n"
	hsKey     = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)

func TestProtocolCloseCodes(t *testing.T) {
	n := startNode(t, nil)
	n.register(t, "proto")
	closeWith := func(t *testing.T, payload []byte) int {
		t.Helper()
		rc, err := n.rawUpgrade(t, "proto")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.WelcomeID(); err != nil {
			t.Fatal(err)
		}
		if _, err := rc.NC.Write(wstest.ClientFrame(0x88, payload, true)); err != nil {
			t.Fatal(err)
		}
		code, ended, _, err := rc.WaitEnd(5 * time.Second)
		if !ended {
			t.Fatalf("connection not closed after the client's close frame: %v", err)
		}
		return code
	}
	codeBytes := func(code int, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
	}
	// Every registered code a peer may send is echoed.
	var echoed []int
	for c := 1000; c <= 1003; c++ {
		echoed = append(echoed, c)
	}
	for c := 1007; c <= 1014; c++ {
		echoed = append(echoed, c)
	}
	echoed = append(echoed, 3000, 3999, 4000, 4999)
	for _, code := range echoed {
		t.Run(fmt.Sprintf("code %d echoed", code), func(t *testing.T) {
			if got := closeWith(t, codeBytes(code, "bye")); got != code {
				t.Errorf("close %d answered with %d", code, got)
			}
		})
	}
	// Codes a peer may not send are a protocol error.
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		t.Run(fmt.Sprintf("code %d refused", code), func(t *testing.T) {
			if got := closeWith(t, codeBytes(code, "")); got != 1002 {
				t.Errorf("close %d answered with %d, want 1002", code, got)
			}
		})
	}
	t.Run("reason not UTF-8", func(t *testing.T) {
		if got := closeWith(t, codeBytes(1000, "ok \xff\xfe")); got != 1007 {
			t.Errorf("close reason with invalid UTF-8 answered with %d, want 1007", got)
		}
	})
	t.Run("no code", func(t *testing.T) {
		if got := closeWith(t, nil); got != 1000 {
			t.Errorf("close without a code answered with %d, want 1000", got)
		}
	})
}

func TestProtocolHandshake(t *testing.T) {
	n := startNode(t, nil)
	n.register(t, "proto")
	cases := []struct {
		name, proto, headers, msg string
	}{
		{"HTTP/1.0 upgrade", "HTTP/1.0", hsUpgrade + hsVersion + hsKey, "HTTP/1.1"},
		{"no Sec-WebSocket-Key", "HTTP/1.1", hsUpgrade + hsVersion, "Sec-WebSocket-Key"},
		{"Sec-WebSocket-Key not 16 bytes", "HTTP/1.1", hsUpgrade + hsVersion + "Sec-WebSocket-Key: AAAA\r\n", "Sec-WebSocket-Key"},
		{"no Sec-WebSocket-Version", "HTTP/1.1", hsUpgrade + hsKey, "Sec-WebSocket-Version"},
		{"Sec-WebSocket-Version 8", "HTTP/1.1", hsUpgrade + "Sec-WebSocket-Version: 8\r\n" + hsKey, "Sec-WebSocket-Version"},
		{"no Upgrade header", "HTTP/1.1", "Connection: Upgrade\r\n" + hsVersion + hsKey, "WebSocket upgrade"},
		{"no Connection: Upgrade", "HTTP/1.1", "Upgrade: websocket\r\n" + hsVersion + hsKey, "WebSocket upgrade"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.rawHandshake(t, c.proto, c.headers)
			if err := wstest.CheckEnvelope(r); err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusBadRequest || r.Code != 10001 || !strings.Contains(r.Msg, c.msg) {
				t.Fatalf("%s: want HTTP 400, code 10001, a msg naming %q", r, c.msg)
			}
		})
	}
	if r := n.rawHandshake(t, "HTTP/1.1", hsUpgrade+hsVersion+hsKey); r.Status != http.StatusSwitchingProtocols {
		t.Fatalf("a valid handshake answered %s", r)
	}
}

func TestProtocolSubprotocols(t *testing.T) {
	cases := []struct {
		name       string
		configured string // GOWS_WEBSOCKET_SUBPROTOCOLS; "" keeps the default
		offered    string // Sec-WebSocket-Protocol of the request; "" sends none
		want       string // selected; "" means no header in the answer
	}{
		{"default selects gows.v1", "", "gows.v1", "gows.v1"},
		{"first match among several offers", "", "chat, gows.v1", "gows.v1"},
		{"offers over two header lines", "", "chat\r\nSec-WebSocket-Protocol: gows.v1", "gows.v1"},
		{"none matches: no header", "", "chat, mqtt", ""},
		{"nothing offered: no header", "", "", ""},
		{"the client's order wins", "mqtt,chat", "chat, mqtt", "chat"},
	}
	nodes := map[string]*node{}
	for _, c := range cases {
		if nodes[c.configured] == nil {
			e := env{}
			if c.configured != "" {
				e["GOWS_WEBSOCKET_SUBPROTOCOLS"] = c.configured
			}
			nodes[c.configured] = startNode(t, e)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := nodes[c.configured]
			headers := hsUpgrade + hsVersion + hsKey
			if c.offered != "" {
				headers += "Sec-WebSocket-Protocol: " + c.offered + "\r\n"
			}
			r := n.rawHandshake(t, "HTTP/1.1", headers)
			if r.Status != http.StatusSwitchingProtocols {
				t.Fatalf("handshake answered %s", r)
			}
			got, present := r.Header["Sec-Websocket-Protocol"]
			switch {
			case c.want == "" && present:
				t.Fatalf("offered %q: answered Sec-WebSocket-Protocol %q, want no header", c.offered, got)
			case c.want != "" && (len(got) != 1 || got[0] != c.want):
				t.Fatalf("offered %q: selected %q, want %q", c.offered, got, c.want)
			}
		})
	}
}

// The access log shows an upgrade with the status the client got: 101.
func TestProtocolAccessLog101(t *testing.T) {
	n := startNode(t, env{kLogLevel: "info"})
	n.register(t, "proto")
	c := n.dial(t, "proto")
	c.Close()
	if r := n.rawHandshake(t, "HTTP/1.0", hsUpgrade+hsVersion+hsKey); r.Status != http.StatusBadRequest {
		t.Fatalf("HTTP/1.0 upgrade answered %s", r)
	}
	var upgraded, refused bool
	ok := wstest.Poll(5*time.Second, func() bool {
		upgraded, refused = false, false
		for _, line := range strings.Split(n.Output(), "\n") {
			if !strings.Contains(line, `"path": "`+mainWSPath+`"`) {
				continue
			}
			upgraded = upgraded || strings.Contains(line, `"status": 101`)
			refused = refused || strings.Contains(line, `"status": 400`)
		}
		return upgraded && refused
	})
	if !ok {
		t.Fatalf("access log: upgrade logged with 101: %v, refused handshake with 400: %v\n%s", upgraded, refused, n.Tail(4<<10))
	}
}
