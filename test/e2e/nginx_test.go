package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/test/internal/clusterfix"
)

// The shipped nginx sample (deploy/nginx.conf) in front of one node: what
// a proxy must not break.

// startNginx runs nginx with a copy of deploy/nginx.conf in front of n and
// returns nginx's address (host:port). Without nginx the test is skipped,
// unless CI is set.
func startNginx(t *testing.T, n *node) string {
	t.Helper()
	clusterfix.Require(t, "nginx")
	return clusterfix.StartNginx(t, repoRoot, []string{"127.0.0.1:" + strconv.Itoa(n.port)}, "").Addr
}

// dialVia connects a client through addr and returns it with its clientId.
func dialVia(t *testing.T, addr, systemID string) (*websocket.Conn, string) {
	t.Helper()
	conn, _, err := wsDialer.Dial("ws://"+addr+mainWSPath+"?systemId="+urlQueryEscape(systemID), nil)
	if err != nil {
		t.Fatalf("connect through nginx: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := conn.ReadMessage()
	var w struct{ Data struct{ ClientID string } }
	if err != nil || json.Unmarshal(b, &w) != nil || w.Data.ClientID == "" {
		t.Fatalf("welcome through nginx: %q %v", b, err)
	}
	return conn, w.Data.ClientID
}

// Serial 60 KB pushes, API call and WebSocket both through nginx: each one
// arrives, promptly. A body over nginx's default 16k buffer used to be
// spooled to a file and sent on in pieces, and Nagle's algorithm on nginx's
// upstream connection then waited for the node's delayed ACK: about 40 ms a
// push.
func TestNginxLargePushes(t *testing.T) {
	n := startNode(t, nil)
	n.register(t, "ngx")
	addr := startNginx(t, n)
	conn, id := dialVia(t, addr, "ngx")
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer hc.CloseIdleConnections()

	payload := `"` + strings.Repeat("p", 60_000) + `"`
	const pushes = 20
	var took []time.Duration
	for i := 0; i < pushes; i++ {
		body := `{"clientId":` + jsonStr(id) + `,"code":` + strconv.Itoa(i) + `,"data":` + payload + `}`
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+mainPrefix+"send_to_client", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("systemId", "ngx")
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("push %d through nginx: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("push %d through nginx: HTTP %d", i, resp.StatusCode)
		}
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("push %d did not arrive through nginx: %v", i, err)
		}
		took = append(took, time.Since(start))
		f, err := parseFrame(b)
		if err != nil || f.Code != i || string(f.Data) != payload {
			t.Fatalf("push %d arrived as code %d with %d bytes of data (%v)", i, f.Code, len(f.Data), err)
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	median := took[pushes/2]
	t.Logf("60 KB push through nginx, API call to frame received: median %v, max %v", median, took[pushes-1])
	// A stall on Nagle and delayed ACK is at least 40 ms; without it a push
	// takes a few milliseconds, even under -race.
	if median > 25*time.Millisecond {
		t.Errorf("median push through nginx took %v (want well under 40 ms: a Nagle/delayed-ACK stall)", median)
	}
}

// A client frame over the read limit reaches the client through nginx as
// 1009: the node reads on until the client's answering close, so the
// socket is not closed with unread bytes and nginx sees no reset.
func TestNginxTooBigFrame(t *testing.T) {
	n := startNode(t, nil) // readLimit 8 KiB
	n.register(t, "ngx")
	addr := startNginx(t, n)
	big := bytes.Repeat([]byte("b"), 1<<20)
	// One 1 MiB frame (as browsers and Python's websockets send it), and
	// the same message in gorilla's 4 KiB fragments, in turns.
	oneFrame := []byte{0x82, 0x80 | 127}
	oneFrame = binary.BigEndian.AppendUint64(oneFrame, uint64(len(big)))
	oneFrame = append(append(oneFrame, 0, 0, 0, 0), big...) // masking key 0
	for i := 0; i < 6; i++ {
		conn, _ := dialVia(t, addr, "ngx")
		_ = conn.SetWriteDeadline(time.Now().Add(15 * time.Second))
		var err error
		if i%2 == 0 {
			_, err = conn.UnderlyingConn().Write(oneFrame)
		} else {
			err = conn.WriteMessage(websocket.BinaryMessage, big)
		}
		if err != nil {
			t.Fatalf("try %d: writing the 1 MiB message: %v (the node stopped reading)", i, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, _, err = conn.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("try %d: want close 1009 through nginx, got %v", i, err)
		}
		conn.Close()
	}
}
