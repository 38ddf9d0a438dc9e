package cluster

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/tools/ident"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeLocal answers RPCs; while stalled, its operations block until released.
type fakeLocal struct {
	id      ident.NodeID
	calls   atomic.Int64
	errs    atomic.Int64
	lost    atomic.Int64 // NodeLost calls
	mu      sync.Mutex
	release chan struct{} // non-nil while stalled
}

func newFakeLocal() *fakeLocal { return &fakeLocal{id: ident.NewNodeID()} }

func (f *fakeLocal) ID() ident.NodeID { return f.id }
func (f *fakeLocal) CountRPCError()   { f.errs.Add(1) }
func (f *fakeLocal) PresenceOf(string) (rpcwire.ClientPresence, bool) {
	return rpcwire.ClientPresence{}, false
}
func (f *fakeLocal) EachPresence(func(string, rpcwire.ClientPresence)) {}
func (f *fakeLocal) NodeLost()                                         { f.lost.Add(1) }
func (f *fakeLocal) PeerLost([]servers.LostClient)                     {}

func (f *fakeLocal) wait() {
	f.mu.Lock()
	ch := f.release
	f.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (f *fakeLocal) stall() {
	f.mu.Lock()
	f.release = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeLocal) unstall() {
	f.mu.Lock()
	if f.release != nil {
		close(f.release)
		f.release = nil
	}
	f.mu.Unlock()
}

func (f *fakeLocal) LocalUnicast(op *rpcwire.UnicastOp) *rpcwire.UnicastReply {
	f.calls.Add(1)
	f.wait()
	return &rpcwire.UnicastReply{Online: op.ClientID == "online", Delivered: len(op.ClientIDs)}
}

func (f *fakeLocal) LocalBroadcast(op *rpcwire.BroadcastOp) *rpcwire.BroadcastReply {
	f.calls.Add(1)
	f.wait()
	if op.Kind == rpcwire.OpStats {
		return &rpcwire.BroadcastReply{Stats: &rpcwire.Stats{NodeID: f.id.String()}}
	}
	return &rpcwire.BroadcastReply{Recipients: 3, IDs: []string{"a-" + op.Group}}
}

// server starts an RPC server for local with secret; it is closed (after
// releasing any stall) when the test ends.
func server(t *testing.T, local *fakeLocal, secret string, log *zap.Logger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newRPCServer(ln, local, func(*rpcwire.PresenceOp) *rpcwire.PresenceReply { return &rpcwire.PresenceReply{} },
		authKey([]byte(secret)), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		local.unstall()
		s.close()
	})
	return ln.Addr().String()
}

// bareDialer is what peers need (no etcd).
func bareDialer(t *testing.T, secret string, timeout time.Duration) (*dialer, *fakeLocal) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	local := newFakeLocal()
	d := &dialer{ctx: ctx, self: local.id, key: authKey([]byte(secret)), timeout: timeout,
		log: zap.NewNop(), metrics: metrics.New(), failed: local.CountRPCError}
	t.Cleanup(cancel)
	return d, local
}

func startPeer(t *testing.T, d *dialer, id ident.NodeID, addr string) *peer {
	t.Helper()
	p := newPeer(d, id, NodeInfo{ID: id.String(), RPCAddr: addr})
	go p.run()
	t.Cleanup(func() {
		p.stop()
		<-p.done
	})
	return p
}

func TestHandshake(t *testing.T) {
	key, other := authKey([]byte("right")), authKey([]byte("wrong"))
	srvID, cliID := ident.NewNodeID(), ident.NewNodeID()
	cases := []struct {
		name           string
		serverKey      []byte
		clientKey      []byte
		want           ident.NodeID
		serverErr, cli bool
	}{
		{"same secret", key, key, srvID, false, false},
		{"client without the secret", key, other, srvID, true, true},
		{"server without the secret", other, key, srvID, true, true},
		{"another node at the address", key, key, ident.NewNodeID(), false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			_ = a.SetDeadline(time.Now().Add(2 * time.Second))
			_ = b.SetDeadline(time.Now().Add(2 * time.Second))
			var serr error
			var got ident.NodeID
			done := make(chan struct{})
			go func() {
				defer close(done)
				got, serr = serverHandshake(a, tc.serverKey, srvID)
				if serr != nil {
					a.Close() // a refusing server hangs up
				}
			}()
			cerr := clientHandshake(b, tc.clientKey, cliID, tc.want)
			b.Close()
			<-done
			if (serr != nil) != tc.serverErr {
				t.Errorf("server error = %v, want error %v", serr, tc.serverErr)
			}
			if (cerr != nil) != tc.cli {
				t.Errorf("client error = %v, want error %v", cerr, tc.cli)
			}
			if serr == nil && got != cliID {
				t.Errorf("server saw client %s, want %s", got, cliID)
			}
		})
	}
}

func TestRPCPortRefusesProcessWithoutSecret(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	local := newFakeLocal()
	addr := server(t, local, "cluster-secret", zap.New(core))

	// A process with another secret: refused, the refusal logged, no call run.
	bad, _ := bareDialer(t, "not-the-secret", time.Second)
	p := startPeer(t, bad, local.id, addr)
	outcome, err := p.call(context.Background(), rpcwire.RPCUnicast, &rpcwire.UnicastOp{ClientID: "online"}, new(rpcwire.UnicastReply))
	if err == nil || outcome != outcomeUnreachable {
		t.Fatalf("call without the secret: outcome %s, err %v; want unreachable", outcome, err)
	}
	if n := local.calls.Load(); n != 0 {
		t.Fatalf("%d operations ran for a caller without the secret", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for logs.FilterMessageSnippet("refused").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if logs.FilterMessageSnippet("refused").Len() == 0 {
		t.Fatalf("refusal not logged; logs: %v", logs.All())
	}

	// Raw garbage on the port is refused too.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = nc.Write([]byte(strings.Repeat("GET / HTTP/1.1\r\n", 10)))
	_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 256)
	total := 0
	for {
		n, err := nc.Read(buf)
		total += n
		if err != nil {
			break
		}
	}
	nc.Close()
	if total > helloLen {
		t.Fatalf("server sent %d bytes to an unauthenticated client, want only its hello", total)
	}

	// A peer with the secret gets answers.
	good, _ := bareDialer(t, "cluster-secret", time.Second)
	q := startPeer(t, good, local.id, addr)
	var r rpcwire.UnicastReply
	if outcome, err := q.call(context.Background(), rpcwire.RPCUnicast, &rpcwire.UnicastOp{ClientID: "online"}, &r); err != nil || !r.Online {
		t.Fatalf("call with the secret: %s %v %+v", outcome, err, r)
	}
}

func TestPeerDeadlineDownAndBack(t *testing.T) {
	local := newFakeLocal()
	addr := server(t, local, "s", zap.NewNop())
	const timeout = 300 * time.Millisecond
	c, _ := bareDialer(t, "s", timeout)
	p := startPeer(t, c, local.id, addr)
	call := func() (string, time.Duration, error) {
		start := time.Now()
		o, err := p.call(context.Background(), rpcwire.RPCBroadcast, &rpcwire.BroadcastOp{Kind: rpcwire.OpGroup}, new(rpcwire.BroadcastReply))
		return o, time.Since(start), err
	}
	if o, _, err := call(); err != nil {
		t.Fatalf("healthy call: %s %v", o, err)
	}
	local.stall()
	o, d, err := call()
	if !errors.Is(err, errTimeout) || o != outcomeTimeout {
		t.Fatalf("stalled call: %s %v", o, err)
	}
	if d < timeout || d > timeout+200*time.Millisecond {
		t.Fatalf("stalled call returned after %v, want the deadline %v", d, timeout)
	}
	// Down now: later calls fail at once instead of waiting again.
	for range 3 {
		if o, d, _ := call(); o != outcomeUnreachable || d > 50*time.Millisecond {
			t.Fatalf("call to a down peer: %s after %v, want unreachable at once", o, d)
		}
	}
	if p.up() {
		t.Fatal("stalled peer still up")
	}
	local.unstall()
	deadline := time.Now().Add(5 * time.Second)
	for !p.up() {
		if time.Now().After(deadline) {
			t.Fatal("peer not up again after it answers")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if o, _, err := call(); err != nil {
		t.Fatalf("call after recovery: %s %v", o, err)
	}
}

func TestPeerConnectionLossIsNoticedAtOnce(t *testing.T) {
	local := newFakeLocal()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newRPCServer(ln, local, func(*rpcwire.PresenceOp) *rpcwire.PresenceReply { return &rpcwire.PresenceReply{} },
		authKey([]byte("s")), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := bareDialer(t, "s", time.Second)
	p := startPeer(t, c, local.id, ln.Addr().String())
	if _, err := p.call(context.Background(), rpcwire.RPCUnicast, &rpcwire.UnicastOp{}, new(rpcwire.UnicastReply)); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	s.close() // the peer process dies: its sockets close
	for p.up() {
		if time.Since(killed) > 2*time.Second {
			t.Fatal("peer still up 2 s after its connection closed")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("connection loss noticed after %v", time.Since(killed))
	start := time.Now()
	if o, _ := p.call(context.Background(), rpcwire.RPCUnicast, &rpcwire.UnicastOp{}, new(rpcwire.UnicastReply)); o != outcomeUnreachable {
		t.Fatalf("call to a dead peer: %s", o)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("call to a dead peer took %v", d)
	}
}
