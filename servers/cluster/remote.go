package cluster

import (
	"context"
	"fmt"
	"sort"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// RPC method labels of the metrics.
const (
	methodUnicast   = "unicast"
	methodBroadcast = "broadcast"
	methodPresence  = "presence"
)

// Unicast implements servers.Remote: it runs op on the node that owns the
// client. A node that is not in the peer table (never was, or its lease
// expired) holds no clients: the reply says 10006, which every caller
// treats as "not online" (is_online answers false). A registered node that
// does not answer within the deadline gives a 10009 error.
//
// A node missing from the table is looked up in etcd first: it may have
// registered a moment ago, before its watch event arrived here.
func (c *Cluster) Unicast(ctx context.Context, node ident.NodeID, op *rpcwire.UnicastOp) (*rpcwire.UnicastReply, error) {
	p := c.table.get(node)
	if p == nil {
		if p = c.table.lookup(ctx, node); p == nil {
			return &rpcwire.UnicastReply{Code: define.CodeClientOffline}, nil
		}
	}
	if p.leaving.Load() && op.Kind != rpcwire.OpTakeSession {
		// A node that left holds no clients any more; while it drains it
		// only hands its sessions over.
		return &rpcwire.UnicastReply{Code: define.CodeClientOffline}, nil
	}
	reply := new(rpcwire.UnicastReply)
	if err := c.d.call(ctx, p, methodUnicast, rpcwire.RPCUnicast, op, reply); err != nil {
		return nil, &define.Error{Code: define.CodeUnavailable,
			Msg: fmt.Sprintf("cluster unavailable: node %s, which holds the client, does not answer; try again", p.name)}
	}
	return reply, nil
}

// Broadcast implements servers.Remote: op runs on every peer in parallel.
// Peers that are down are not called and are listed as unreachable at once;
// the others have until the deadline to answer.
func (c *Cluster) Broadcast(ctx context.Context, op *rpcwire.BroadcastOp) ([]*rpcwire.BroadcastReply, []string) {
	t := c.table.all()
	ps := make([]*peer, 0, len(t))
	for _, p := range t {
		if !p.leaving.Load() {
			ps = append(ps, p)
		}
	}
	return c.broadcast(ctx, ps, op)
}

var _ servers.Targeted = (*Cluster)(nil)

// BroadcastTo implements servers.Targeted: op runs on the named nodes that
// are in the peer table, like Broadcast.
func (c *Cluster) BroadcastTo(ctx context.Context, nodes []ident.NodeID, op *rpcwire.BroadcastOp) ([]*rpcwire.BroadcastReply, []string) {
	t := c.table.all()
	ps := make([]*peer, 0, len(nodes))
	for _, id := range nodes {
		if p := t[id]; p != nil && !p.leaving.Load() {
			ps = append(ps, p)
		}
	}
	return c.broadcast(ctx, ps, op)
}

func (c *Cluster) broadcast(ctx context.Context, t []*peer, op *rpcwire.BroadcastOp) ([]*rpcwire.BroadcastReply, []string) {
	if len(t) == 0 {
		return nil, nil
	}
	type result struct {
		p     *peer
		reply *rpcwire.BroadcastReply
		err   error
	}
	results := make(chan result, len(t))
	var unreachable []string
	calls := 0
	for _, p := range t {
		if !p.up() {
			c.metrics.RPCCalls.WithLabelValues(methodBroadcast, outcomeUnreachable).Inc()
			c.d.failed()
			unreachable = append(unreachable, p.name)
			continue
		}
		calls++
		go func() {
			r := new(rpcwire.BroadcastReply)
			err := c.d.call(ctx, p, methodBroadcast, rpcwire.RPCBroadcast, op, r)
			results <- result{p, r, err}
		}()
	}
	replies := make([]*rpcwire.BroadcastReply, 0, calls)
	for range calls {
		r := <-results
		if r.err != nil {
			unreachable = append(unreachable, r.p.name)
			continue
		}
		replies = append(replies, r.reply)
	}
	sort.Strings(unreachable)
	return replies, unreachable
}
