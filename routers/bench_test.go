package routers

import (
	"context"
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

// BenchmarkSendToClientHandler measures the API path of send_to_client
// in process: routing, middleware, decoding, validation, the node, framing
// and queueing; the frame then goes out to a real WebSocket client.
func BenchmarkSendToClientHandler(b *testing.B) {
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
	e := New(Options{Node: node, Logger: zap.NewNop(), Metrics: m, MaxBodyBytes: 1 << 20})
	srv := httptest.NewServer(e)
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+Prefix+"ws?systemId=s", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	var env struct{ Data struct{ ClientID string } }
	if err := ws.ReadJSON(&env); err != nil {
		b.Fatal(err)
	}
	received := make(chan int)
	go func() {
		n := 0
		for {
			if _, _, err := ws.NextReader(); err != nil {
				received <- n
				return
			}
			n++
		}
	}()
	body := `{"clientId":"` + env.Data.ClientID + `","sendUserId":"u","code":1,"msg":"m","data":{"text":"0123456789012345678901234567890123456789"}}`
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, Prefix+"send_to_client", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("systemId", "s")
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.StopTimer()
	ws.Close()
	<-received
}
