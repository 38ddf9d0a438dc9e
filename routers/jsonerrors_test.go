package routers

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/define"
)

// The errors Go's HTTP server answers before any handler runs come out as
// the JSON envelope, with their status; handlers' answers pass untouched.
func TestJSONErrorsBeforeRouting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "handler")
		}),
		MaxHeaderBytes: 1 << 10,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(JSONErrors(ln)) }()
	defer func() {
		_ = srv.Close()
		<-done
	}()
	send := func(raw string) *http.Response {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"malformed header", "GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
		{"unsupported transfer encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
	} {
		resp := send(tc.raw)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var env define.Response
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" ||
			json.Unmarshal(body, &env) != nil || env.Code != define.CodeInvalidRequest || !strings.Contains(env.Msg, "malformed HTTP request") {
			t.Errorf("%s: %d %q %s", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	resp := send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "handler" {
		t.Fatalf("a handler's answer was changed: %d %s", resp.StatusCode, body)
	}
}
