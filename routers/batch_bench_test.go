package routers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/store"
)

// BenchmarkBatchSendToClient measures one message sent through batch (ops
// of 1,000 send_to_client spread over 10 real WebSocket clients), in
// process: decoding, validation, the node, framing, queueing and writing.
// b.N counts messages.
func BenchmarkBatchSendToClient(b *testing.B) {
	sys, err := store.OpenFile(b.TempDir() + "/systems.json")
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New()
	node := servers.NewNode(servers.Options{
		Hub: servers.HubConfig{PingInterval: time.Minute, PongWait: 2 * time.Minute,
			WriteTimeout: 10 * time.Second, QueueLength: 1 << 16, ReadLimit: 8192},
		Secret: []byte("k"), Systems: sys, Metrics: m,
	})
	defer node.Shutdown(time.Now().Add(time.Second))
	if err := node.Register(context.Background(), "s"); err != nil {
		b.Fatal(err)
	}
	e := New(Options{Node: node, Logger: zap.NewNop(), Metrics: m, MaxBodyBytes: 16 << 20})
	srv := httptest.NewServer(e)
	defer srv.Close()
	const clients, perBatch = 10, 1000
	ids := make([]string, clients)
	done := make(chan int, clients)
	for i := range ids {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+Prefix+"ws?systemId=s", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ws.Close()
		var env struct{ Data struct{ ClientID string } }
		if err := ws.ReadJSON(&env); err != nil {
			b.Fatal(err)
		}
		ids[i] = env.Data.ClientID
		go func() {
			n := 0
			for {
				if _, _, err := ws.NextReader(); err != nil {
					done <- n
					return
				}
				n++
			}
		}()
	}
	var sb strings.Builder
	sb.WriteString(`{"ops":[`)
	for i := range perBatch {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"op":"send_to_client","clientId":%q,"sendUserId":"u","code":1,"msg":"m","data":{"text":"0123456789012345678901234567890123456789"}}`, ids[i%clients])
	}
	sb.WriteString(`]}`)
	body := sb.String()
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += perBatch {
		req := httptest.NewRequest(http.MethodPost, Prefix+"batch", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("systemId", "s")
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
