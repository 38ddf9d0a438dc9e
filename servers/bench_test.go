package servers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/servers/store"
)

// benchGroup connects n clients that read and count frames, all in group g.
func benchGroup(b *testing.B, n int) (*Node, *atomic.Int64, func()) {
	b.Helper()
	sys, err := store.OpenFile(b.TempDir() + "/systems.json")
	if err != nil {
		b.Fatal(err)
	}
	cfg := defaultHub()
	cfg.QueueLength = 4096
	node := NewNode(Options{Hub: cfg, Secret: []byte("k"), Systems: sys})
	ctx := context.Background()
	if err := node.Register(ctx, "s"); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(node.ServeWS))
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/?systemId=s"
	var got atomic.Int64
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		var env struct{ Data struct{ ClientID string } }
		if err := ws.ReadJSON(&env); err != nil {
			b.Fatal(err)
		}
		if err := node.BindToGroup(ctx, "s", env.Data.ClientID, "g", "", ""); err != nil {
			b.Fatal(err)
		}
		conns[i] = ws
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	return node, &got, func() {
		node.Shutdown(time.Now().Add(time.Second))
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
		srv.Close()
	}
}

// BenchmarkFanout measures one send_to_group to 1,000 members, end to end
// through real loopback sockets, until every member has read the frame.
func BenchmarkFanout(b *testing.B) {
	const members = 1000
	node, got, stop := benchGroup(b, members)
	defer stop()
	m := msg(`{"text":"0123456789012345678901234567890123456789"}`)
	ctx := context.Background()
	got.Store(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := node.SendToGroup(ctx, "s", "g", m); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N * members)
	deadline := time.Now().Add(time.Minute)
	for got.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if got.Load() < want {
		b.Fatalf("received %d of %d", got.Load(), want)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(want), "ns/delivery")
}

// BenchmarkFanoutPublishers16 is BenchmarkFanout with 16 goroutines
// publishing at once, as backends do: frames that pile up for a client
// while it waits for its write leave together.
func BenchmarkFanoutPublishers16(b *testing.B) {
	const members, publishers = 1000, 16
	node, got, stop := benchGroup(b, members)
	defer stop()
	m := msg(`{"text":"0123456789012345678901234567890123456789"}`)
	ctx := context.Background()
	got.Store(0)
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := node.SendToGroup(ctx, "s", "g", m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := int64(b.N * members)
	deadline := time.Now().Add(time.Minute)
	for got.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if got.Load() < want {
		b.Fatalf("received %d of %d", got.Load(), want)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(want), "ns/delivery")
}

// BenchmarkBroadcastEnqueue measures only the sender's side of a broadcast:
// snapshot the group and queue one shared frame per member.
func BenchmarkBroadcastEnqueue(b *testing.B) {
	const members = 1000
	node, _, stop := benchGroup(b, members)
	defer stop()
	m := msg(`{"text":"0123456789012345678901234567890123456789"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		node.LocalBroadcast(&BroadcastOp{Kind: OpGroup, SystemID: "s", Group: "g", MessageID: "m", Msg: *m})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/enqueue")
}
