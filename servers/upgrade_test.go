package servers

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawHandshake sends a hand-written request to the harness and returns the
// answer's status, headers and body (the body only when it is not a 101).
func rawHandshake(t *testing.T, h *harness, request string) (*http.Response, []byte) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp, body
}

func TestUpgradeRefusesBadHandshakes(t *testing.T) {
	h := newHarness(t, nil)
	const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	const upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	cases := []struct {
		name, request, msg string
	}{
		{"HTTP/1.0", "GET /?systemId=s1 HTTP/1.0\r\nHost: x\r\n" + upgrade + "Sec-WebSocket-Version: 13\r\n" + key + "\r\n", "HTTP/1.1"},
		{"no key", "GET /?systemId=s1 HTTP/1.1\r\nHost: x\r\n" + upgrade + "Sec-WebSocket-Version: 13\r\n\r\n", "Sec-WebSocket-Key"},
		{"short key", "GET /?systemId=s1 HTTP/1.1\r\nHost: x\r\n" + upgrade + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n", "Sec-WebSocket-Key"},
		{"version 8", "GET /?systemId=s1 HTTP/1.1\r\nHost: x\r\n" + upgrade + "Sec-WebSocket-Version: 8\r\n" + key + "\r\n", "Sec-WebSocket-Version"},
		{"no Upgrade header", "GET /?systemId=s1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" + key + "\r\n", "needs a WebSocket upgrade"},
		{"POST", "POST /?systemId=s1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + upgrade + "Sec-WebSocket-Version: 13\r\n" + key + "\r\n", "GET"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawHandshake(t, h, c.request)
			var env struct {
				Code int
				Msg  string
			}
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" ||
				json.Unmarshal(body, &env) != nil || env.Code != 10001 || !strings.Contains(env.Msg, c.msg) {
				t.Fatalf("HTTP %d %q %s: want 400 with the JSON envelope, code 10001, msg naming %q",
					resp.StatusCode, resp.Header.Get("Content-Type"), body, c.msg)
			}
		})
	}
	// The same request over HTTP/1.1 is upgraded.
	resp, _ := rawHandshake(t, h, "GET /?systemId=s1 HTTP/1.1\r\nHost: x\r\n"+upgrade+"Sec-WebSocket-Version: 13\r\n"+key+"\r\n")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("valid handshake answered %d", resp.StatusCode)
	}
}

func TestSubprotocolSelection(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Connect.Subprotocols = []string{"gows.v1", "gows.v2"} })
	url := "ws" + strings.TrimPrefix(h.srv.URL, "http") + "/?systemId=s1"
	cases := []struct {
		offered []string
		want    string
	}{
		{nil, ""},
		{[]string{"gows.v1"}, "gows.v1"},
		{[]string{"chat", "gows.v1"}, "gows.v1"},
		{[]string{"gows.v2", "gows.v1"}, "gows.v2"}, // the client's order of preference
		{[]string{"chat", "mqtt"}, ""},
	}
	for _, c := range cases {
		d := websocket.Dialer{Subprotocols: c.offered, HandshakeTimeout: 5 * time.Second}
		ws, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("offered %q: %v", c.offered, err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != c.want || ws.Subprotocol() != c.want {
			t.Errorf("offered %q: selected %q, want %q", c.offered, got, c.want)
		}
		ws.Close()
	}
}
