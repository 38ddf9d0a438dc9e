package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdwatch"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// Outcomes of a call, as counted in gows_rpc_calls_total.
const (
	outcomeOK          = "ok"
	outcomeError       = "error"
	outcomeTimeout     = "timeout"
	outcomeUnreachable = "unreachable" // skipped: the peer is down
)

var (
	errTimeout = errors.New("peer did not answer within the RPC deadline")
	errDown    = errors.New("peer is down; waiting for it to answer again")
)

// dialer is what every peer shares: this node's id, the handshake key, the
// call deadline, the metrics, and the context that Close cancels.
type dialer struct {
	ctx     context.Context
	self    ident.NodeID
	key     []byte
	timeout time.Duration
	log     *zap.Logger
	metrics *metrics.Metrics
	// failed is told of every failed call (the node counts them).
	failed func()
	// tls, when set, wraps every connection in mutual TLS.
	tls *tls.Config
}

// call runs one RPC on p and records it in the metrics.
func (d *dialer) call(ctx context.Context, p *peer, method, svc string, args, reply any) error {
	start := time.Now()
	outcome, err := p.call(ctx, svc, args, reply)
	d.metrics.RPCCalls.WithLabelValues(method, outcome).Inc()
	if outcome != outcomeUnreachable {
		d.metrics.RPCLatency.WithLabelValues(method).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		d.failed()
		d.log.Debug("rpc failed", zap.String("peer", p.name), zap.String("method", method),
			zap.String("outcome", outcome), zap.Error(err))
	}
	return err
}

// peer is one other node: its registration and the one persistent,
// authenticated connection to it. A goroutine (run) owns the connection: it
// dials, proves the node answers, and redials with backoff when the
// connection fails. Callers never dial and never wait for a dial except
// the very first one: while no connection is up the peer is "down" and
// callers fail at once (10009 for unicasts, "unreachable" for broadcasts).
type peer struct {
	id   ident.NodeID
	name string
	info NodeInfo // immutable; a changed registration makes a new peer
	d    *dialer

	// unregistered: its registration is gone from etcd; a verifier
	// probes it until it registers again or is declared gone.
	unregistered atomic.Bool
	verifying    atomic.Bool
	leaving      atomic.Bool // it announced a graceful leave

	cur   atomic.Pointer[peerConn] // nil while down
	first chan struct{}            // closed once the first dial has ended
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}
}

type peerConn struct {
	cli *rpc.Client
	dc  *deadlineConn
}

func newPeer(d *dialer, id ident.NodeID, info NodeInfo) *peer {
	ctx, cancel := context.WithCancel(d.ctx)
	return &peer{id: id, name: id.String(), info: info, d: d, first: make(chan struct{}),
		ctx: ctx, stop: cancel, done: make(chan struct{})}
}

// up reports whether the peer has a live connection; a peer whose first
// dial is still running counts as up (callers wait for it).
func (p *peer) up() bool {
	select {
	case <-p.first:
		return p.cur.Load() != nil
	default:
		return true
	}
}

func (p *peer) run() {
	defer close(p.done)
	firstDone := false
	markFirst := func() {
		if !firstDone {
			firstDone = true
			close(p.first)
		}
	}
	defer markFirst()
	log := p.d.log.With(zap.String("peer", p.name), zap.String("rpcAddr", p.info.RPCAddr))
	var wait time.Duration
	failures := 0
	for {
		if !etcdwatch.Sleep(p.ctx, wait) {
			return
		}
		pc, err := p.connect()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			failures++
			switch {
			case errors.Is(err, errBadSecret) || errors.Is(err, errBadMagic):
				if failures%300 == 1 { // about every 5 minutes while it lasts
					log.Error("rpc peer failed authentication: check that every node has the same cluster secret",
						zap.Error(err), zap.Int("attempts", failures))
				}
			case errors.Is(err, errWrongNode) && failures%300 == 1:
				log.Error("another node answers at this peer's rpcAddr: check cluster.rpcAdvertise on every node (the default 127.0.0.1 only works on one host)",
					zap.Error(err), zap.Int("attempts", failures))
			case failures == 1:
				log.Warn("peer unreachable; retrying with backoff", zap.Error(err))
			default:
				log.Debug("peer still unreachable", zap.Error(err), zap.Int("attempts", failures))
			}
			markFirst()
			wait = etcdwatch.Next(wait, 0)
			continue
		}
		p.cur.Store(pc)
		markFirst()
		if failures > 0 {
			log.Info("peer answers again", zap.Int("failedAttempts", failures))
		} else {
			log.Debug("peer connected")
		}
		failures, wait = 0, 0
		select {
		case <-pc.dc.dead:
		case <-p.ctx.Done():
			p.cur.Store(nil)
			pc.cli.Close()
			return
		}
		p.cur.CompareAndSwap(pc, nil)
		pc.cli.Close()
		if p.ctx.Err() != nil {
			return
		}
		log.Warn("peer connection lost; redialling")
		wait = etcdwatch.BackoffMin
	}
}

// connect dials, authenticates, and makes one real call (a stats
// broadcast) so that a peer counts as up only when its node answers.
func (p *peer) connect() (*peerConn, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.d.timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.info.RPCAddr)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	_ = nc.SetDeadline(dl)
	if p.d.tls != nil {
		tc := tls.Client(nc, p.d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		nc = tc
	}
	stopClose := context.AfterFunc(ctx, func() { nc.Close() })
	err = clientHandshake(nc, p.d.key, p.d.self, p.id)
	if !stopClose() {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	dc := newDeadlineConn(nc, p.d.timeout)
	pc := &peerConn{cli: rpc.NewClient(dc), dc: dc}
	var reply rpcwire.BroadcastReply
	call := pc.cli.Go(rpcwire.RPCBroadcast, &rpcwire.BroadcastOp{Kind: rpcwire.OpStats}, &reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		err = call.Error
	case <-ctx.Done():
		err = fmt.Errorf("probe: %w", ctx.Err())
	}
	if err != nil {
		pc.cli.Close()
		return nil, err
	}
	return pc, nil
}

// fail drops a connection that a caller saw fail; run redials.
func (p *peer) fail(pc *peerConn) {
	if p.cur.CompareAndSwap(pc, nil) {
		pc.dc.markDead()
		pc.cli.Close()
	}
}

// call runs one RPC within the cluster's deadline (net/rpc has no
// context: Client.Go and a timer). It never blocks longer than the
// deadline, holds no lock, and marks the peer down on a timeout or a
// broken connection.
func (p *peer) call(ctx context.Context, method string, args, reply any) (string, error) {
	timer := time.NewTimer(p.d.timeout)
	defer timer.Stop()
	select {
	case <-p.first:
	case <-timer.C:
		return outcomeTimeout, errTimeout
	case <-ctx.Done():
		return outcomeError, ctx.Err()
	}
	pc := p.cur.Load()
	if pc == nil {
		return outcomeUnreachable, errDown
	}
	call := pc.cli.Go(method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error == nil {
			return outcomeOK, nil
		}
		var se rpc.ServerError
		if !errors.As(call.Error, &se) {
			p.fail(pc) // transport failure: the connection is gone
		}
		return outcomeError, call.Error
	case <-timer.C:
		p.fail(pc)
		return outcomeTimeout, errTimeout
	case <-ctx.Done():
		return outcomeError, ctx.Err()
	}
}
