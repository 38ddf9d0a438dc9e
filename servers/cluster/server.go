package cluster

import (
	"errors"
	"net"
	"net/rpc"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// Local is what the cluster needs of this process's node: the RPC service
// runs forwarded operations on it, failed calls are counted on it, the
// presence index reads its clients, and it is told when it or a peer was
// declared gone. *servers.Node implements it.
type Local interface {
	ID() ident.NodeID
	LocalUnicast(op *rpcwire.UnicastOp) *rpcwire.UnicastReply
	LocalBroadcast(op *rpcwire.BroadcastOp) *rpcwire.BroadcastReply
	CountRPCError()
	PresenceOf(clientID string) (rpcwire.ClientPresence, bool)
	EachPresence(fn func(clientID string, p rpcwire.ClientPresence))
	NodeLost()
	PeerLost(lost []servers.LostClient)
}

// service is the net/rpc receiver, registered under the name "Node". Its
// methods run the very same node methods a local call would.
type service struct {
	local    Local
	presence func(*rpcwire.PresenceOp) *rpcwire.PresenceReply
}

// Presence runs a peer's presence note on this node.
func (s *service) Presence(op *rpcwire.PresenceOp, reply *rpcwire.PresenceReply) error {
	*reply = *s.presence(op)
	return nil
}

// Unicast runs a forwarded unicast on this node.
func (s *service) Unicast(op *rpcwire.UnicastOp, reply *rpcwire.UnicastReply) error {
	*reply = *s.local.LocalUnicast(op)
	return nil
}

// Broadcast runs a forwarded broadcast on this node.
func (s *service) Broadcast(op *rpcwire.BroadcastOp, reply *rpcwire.BroadcastReply) error {
	*reply = *s.local.LocalBroadcast(op)
	return nil
}

const (
	// serverHandshakeTimeout bounds an accepted connection's handshake.
	serverHandshakeTimeout = 5 * time.Second
	// serverWriteTimeout bounds each reply write; a peer that stops
	// reading loses its connection instead of piling up goroutines.
	serverWriteTimeout = 10 * time.Second
)

// rpcServer accepts peer connections, authenticates them and serves the
// Node service on each. It owns every goroutine it starts.
type rpcServer struct {
	ln   net.Listener
	srv  *rpc.Server
	key  []byte
	self ident.NodeID
	log  *zap.Logger

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
	refusals logLimiter
}

// logLimiter lets one log line through per interval and counts the rest,
// so a misconfigured peer redialling every second does not flood the log.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const refusalLogInterval = 10 * time.Second

func (l *logLimiter) allow(now time.Time) (count int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.suppressed++
	if !l.last.IsZero() && now.Sub(l.last) < refusalLogInterval {
		return 0, false
	}
	l.last = now
	count, l.suppressed = l.suppressed, 0
	return count, true
}

func newRPCServer(ln net.Listener, local Local, presence func(*rpcwire.PresenceOp) *rpcwire.PresenceReply,
	key []byte, log *zap.Logger) (*rpcServer, error) {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Node", &service{local: local, presence: presence}); err != nil {
		return nil, err
	}
	s := &rpcServer{ln: ln, srv: srv, key: key, self: local.ID(), log: log, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *rpcServer) acceptLoop() {
	defer s.wg.Done()
	var wait time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			s.log.Warn("rpc accept failed", zap.Error(err), zap.Duration("retryIn", wait))
			time.Sleep(wait)
			continue
		}
		wait = 0
		if !s.track(c) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

func (s *rpcServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *rpcServer) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	_ = c.SetDeadline(time.Now().Add(serverHandshakeTimeout))
	peer, err := serverHandshake(c, s.key, s.self)
	if err != nil {
		if n, ok := s.refusals.allow(time.Now()); ok {
			s.log.Warn("rpc connection refused: it did not authenticate with the cluster secret",
				zap.String("remote", c.RemoteAddr().String()), zap.Error(err), zap.Int("refusedSinceLastLog", n))
		}
		return
	}
	_ = c.SetDeadline(time.Time{})
	s.log.Debug("rpc peer connected", zap.String("peer", peer.String()), zap.String("remote", c.RemoteAddr().String()))
	// ServeConn returns when the connection ends, after in-flight calls.
	s.srv.ServeConn(newDeadlineConn(c, serverWriteTimeout))
}

// close stops accepting, closes every connection and waits for their
// goroutines (in-flight calls finish first).
func (s *rpcServer) close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}
