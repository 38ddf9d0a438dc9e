// Package servers is the domain: the node, its hub of clients and groups,
// the client read and write loops, and the WebSocket upgrade.
package servers

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/servers/store"
	"github.com/go-websocket/go-websocket/servers/webhook"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// Options configures a Node.
type Options struct {
	Hub              HubConfig
	MembershipEvents bool
	EventsOffSystems []string
	Secret           []byte       // MAC key of clientIds (shared by a cluster)
	NodeID           ident.NodeID // zero: random
	Systems          store.Systems
	Metrics          *metrics.Metrics
	Logger           *zap.Logger
	Connect          ConnectPolicy
	Webhooks         *webhook.Dispatcher // nil: no webhooks
	// EventTimeout bounds sending one membership event to the other nodes.
	// In a cluster it must stay well below the RPC deadline: a bind forwarded
	// to this node sends its 1001 before answering, and a hung third node
	// must not make that answer late. Default 2 s.
	EventTimeout time.Duration
}

// Remote is how a node reaches the other nodes of a cluster. A standalone
// node has none. Implementations bound every call by a deadline.
type Remote interface {
	// Unicast runs op on the node that owns a client. It returns a
	// *define.Error with 10006 when that node is gone and 10009 when it is
	// registered but does not answer.
	Unicast(ctx context.Context, node ident.NodeID, op *UnicastOp) (*UnicastReply, error)
	// Broadcast runs op on every other node in parallel and returns the
	// replies that arrived in time and the ids of the nodes that did not answer.
	Broadcast(ctx context.Context, op *BroadcastOp) ([]*BroadcastReply, []string)
}

// The operations nodes run for each other (see package rpcwire).
type (
	UnicastOp      = rpcwire.UnicastOp
	UnicastReply   = rpcwire.UnicastReply
	BroadcastOp    = rpcwire.BroadcastOp
	BroadcastReply = rpcwire.BroadcastReply
	Stats          = rpcwire.Stats
)

// Operation kinds (see package rpcwire).
const (
	OpSend        = rpcwire.OpSend
	OpSendMany    = rpcwire.OpSendMany
	OpBind        = rpcwire.OpBind
	OpUnbind      = rpcwire.OpUnbind
	OpClose       = rpcwire.OpClose
	OpIsOnline    = rpcwire.OpIsOnline
	OpBindUser    = rpcwire.OpBindUser
	OpTakeSession = rpcwire.OpTakeSession
	OpGroup       = rpcwire.OpGroup
	OpSystem      = rpcwire.OpSystem
	OpList        = rpcwire.OpList
	OpStats       = rpcwire.OpStats
	OpUser        = rpcwire.OpUser
	OpUserList    = rpcwire.OpUserList
)

// Node owns this process's clients and knows, through Remote, the others.
// Handlers call only its exported methods; whether a cluster exists is
// invisible above it.
type Node struct {
	opts   Options
	hub    *Hub
	minter *ident.Minter
	// resumeTokens mints and checks session resume tokens.
	resumeTokens resumeTokens
	msgIDs       *ident.MessageIDs
	systems      store.Systems
	log          *zap.Logger
	metrics      *metrics.Metrics
	started      time.Time

	mu        sync.RWMutex
	remote    Remote
	httpAddr  string
	eventsOff map[string]bool
	rpcErrors atomic.Uint64
	// acks are the messages of this node waiting for a client's ack.
	acks ackWaits
	// moved: clients whose session resumed on another node.
	moved movedClients
	// upgrader answers WebSocket handshakes (built once, on first use).
	upgrader     *websocket.Upgrader
	upgraderOnce sync.Once
}

// NewNode builds a node and starts its hub.
func NewNode(o Options) *Node {
	if o.NodeID == (ident.NodeID{}) {
		o.NodeID = ident.NewNodeID()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.EventTimeout <= 0 {
		o.EventTimeout = 2 * time.Second
	}
	n := &Node{
		opts:         o,
		minter:       ident.NewMinter(o.NodeID, o.Secret),
		resumeTokens: resumeTokens{key: o.Secret},
		msgIDs:       ident.NewMessageIDs(),
		systems:      o.Systems,
		log:          o.Logger,
		metrics:      o.Metrics,
		started:      time.Now(),
		eventsOff:    map[string]bool{},
	}
	for _, s := range o.EventsOffSystems {
		n.eventsOff[s] = true
	}
	n.hub = NewHub(o.Hub, o.Metrics, n)
	return n
}

// ID is this node's id, as carried in its clientIds.
func (n *Node) ID() ident.NodeID { return n.minter.Node() }

// SetRemote attaches the cluster; nil detaches it.
func (n *Node) SetRemote(r Remote) {
	n.mu.Lock()
	n.remote = r
	n.mu.Unlock()
}

func (n *Node) getRemote() Remote {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.remote
}

// Metrics returns the node's collectors.
func (n *Node) Metrics() *metrics.Metrics { return n.metrics }

// Register adds a system.
func (n *Node) Register(ctx context.Context, systemID string) error {
	return n.systems.Register(ctx, systemID)
}

// SystemExists reports whether systemID is registered (from memory).
func (n *Node) SystemExists(systemID string) bool { return n.systems.Exists(systemID) }

func (n *Node) eventsOn(systemID string) bool {
	return n.opts.MembershipEvents && !n.eventsOff[systemID]
}

// route verifies a clientId and says which node holds it: local is true for
// this node. ok is false for an id that is malformed, forged or of another
// system.
func (n *Node) route(systemID, clientID string) (node ident.NodeID, local, ok bool) {
	node, ok = n.minter.Verify(clientID, systemID)
	return node, ok && node == n.minter.Node(), ok
}

// unicast runs op locally or on the owning node.
func (n *Node) unicast(ctx context.Context, op *UnicastOp) (*UnicastReply, error) {
	node, local, ok := n.route(op.SystemID, op.ClientID)
	if !ok {
		return &UnicastReply{Code: define.CodeClientOffline}, nil
	}
	if local {
		return n.LocalUnicast(op), nil
	}
	r := n.getRemote()
	if r == nil {
		return &UnicastReply{Code: define.CodeClientOffline}, nil
	}
	return r.Unicast(ctx, node, op)
}

func replyErr(r *UnicastReply, err error) error {
	if err != nil {
		return err
	}
	switch r.Code {
	case 0:
		return nil
	case define.CodeClientOffline:
		return define.ErrClientOffline
	}
	if r.Msg != "" {
		return &define.Error{Code: r.Code, Msg: r.Msg}
	}
	return &define.Error{Code: r.Code, Msg: "operation failed on the owning node"}
}

// SendToClient pushes a message to one client and returns its messageId.
func (n *Node) SendToClient(ctx context.Context, systemID, clientID string, m *define.Message) (string, error) {
	id := n.msgIDs.Next()
	if done, err := n.corkedSend(ctx, systemID, clientID, id, m); done {
		return id, err
	}
	r, err := n.unicast(ctx, &UnicastOp{Kind: OpSend, SystemID: systemID, ClientID: clientID, MessageID: id, Msg: *m})
	if err := replyErr(r, err); err != nil {
		return "", err
	}
	return id, nil
}

// SendToClients pushes one message to several clients.
func (n *Node) SendToClients(ctx context.Context, systemID string, ids []string, m *define.Message) (*define.SendResult, error) {
	res := &define.SendResult{MessageID: n.msgIDs.Next(), Offline: []string{}}
	byNode := map[ident.NodeID][]string{}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		node, _, ok := n.route(systemID, id)
		if !ok {
			res.Offline = append(res.Offline, id)
			continue
		}
		byNode[node] = append(byNode[node], id)
	}
	var f frame
	var mu sync.Mutex
	var wg sync.WaitGroup
	for node, group := range byNode {
		if node == n.minter.Node() {
			if f == nil {
				f = messageFrame(res.MessageID, m)
			}
			d, off := n.sendMany(systemID, group, f)
			mu.Lock() // remote goroutines started earlier in this loop also write res
			res.Delivered += d
			res.Offline = append(res.Offline, off...)
			mu.Unlock()
			continue
		}
		r := n.getRemote()
		if r == nil {
			mu.Lock()
			res.Offline = append(res.Offline, group...)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(node ident.NodeID, group []string) {
			defer wg.Done()
			rep, err := r.Unicast(ctx, node, &UnicastOp{Kind: OpSendMany, SystemID: systemID,
				ClientID: group[0], ClientIDs: group, MessageID: res.MessageID, Msg: *m})
			mu.Lock()
			defer mu.Unlock()
			if err != nil || rep.Code != 0 {
				res.Offline = append(res.Offline, group...)
				return
			}
			res.Delivered += rep.Delivered
			res.Offline = append(res.Offline, rep.Offline...)
		}(node, group)
	}
	wg.Wait()
	return res, nil
}

func (n *Node) sendMany(systemID string, ids []string, f frame) (int, []string) {
	delivered := 0
	var offline []string
	for _, id := range ids {
		c := n.hub.lookup(systemID, id)
		if c != nil && c.enqueue(f) {
			delivered++
		} else {
			offline = append(offline, id)
		}
	}
	n.hub.countPushed(delivered)
	n.hub.countDropped(len(offline))
	return delivered, offline
}

// BindToGroup puts a client in a group (1001 to every member when it joins).
func (n *Node) BindToGroup(ctx context.Context, systemID, clientID, group, userID, extend string) error {
	r, err := n.unicast(ctx, &UnicastOp{Kind: OpBind, SystemID: systemID, ClientID: clientID,
		Group: group, UserID: userID, Extend: extend})
	return replyErr(r, err)
}

// UnbindFromGroup takes a client out of a group (1002 to the others).
func (n *Node) UnbindFromGroup(ctx context.Context, systemID, clientID, group string) error {
	r, err := n.unicast(ctx, &UnicastOp{Kind: OpUnbind, SystemID: systemID, ClientID: clientID, Group: group})
	return replyErr(r, err)
}

// CloseClient closes a client with 1000.
func (n *Node) CloseClient(ctx context.Context, systemID, clientID string) error {
	r, err := n.unicast(ctx, &UnicastOp{Kind: OpClose, SystemID: systemID, ClientID: clientID})
	return replyErr(r, err)
}

// IsOnline reports whether clientID is an online client of systemID.
func (n *Node) IsOnline(ctx context.Context, systemID, clientID string) (bool, error) {
	r, err := n.unicast(ctx, &UnicastOp{Kind: OpIsOnline, SystemID: systemID, ClientID: clientID})
	if err != nil {
		return false, err
	}
	return r.Online, nil
}

// LocalUnicast runs a unicast on this node's hub; the cluster's RPC service
// calls it for ops that other nodes forward.
func (n *Node) LocalUnicast(op *UnicastOp) *UnicastReply {
	if op.Kind == OpSendMany {
		if _, local, ok := n.route(op.SystemID, op.ClientID); !ok || !local {
			return &UnicastReply{Code: define.CodeClientOffline}
		}
		d, off := n.sendMany(op.SystemID, op.ClientIDs, messageFrame(op.MessageID, &op.Msg))
		return &UnicastReply{Delivered: d, Offline: off}
	}
	if _, local, ok := n.route(op.SystemID, op.ClientID); !ok || !local {
		return &UnicastReply{Code: define.CodeClientOffline}
	}
	if op.Kind == OpTakeSession {
		return n.giveSession(op)
	}
	c := n.hub.lookup(op.SystemID, op.ClientID)
	if c == nil {
		if rep, ok := n.forwardMoved(op); ok {
			return rep
		}
	}
	if op.Kind == OpIsOnline {
		return &UnicastReply{Online: c != nil}
	}
	if c == nil {
		return &UnicastReply{Code: define.CodeClientOffline}
	}
	switch op.Kind {
	case OpSend:
		if op.Ack {
			return n.localAckedSend(c, op)
		}
		if !c.enqueue(messageFrame(op.MessageID, &op.Msg)) {
			n.hub.countDropped(1)
			return &UnicastReply{Code: define.CodeClientOffline}
		}
		n.hub.countPushed(1)
	case OpBindUser:
		ok, err := n.hub.bindUser(c, op.UserID)
		switch {
		case !ok:
			return &UnicastReply{Code: define.CodeClientOffline}
		case err != nil:
			return &UnicastReply{Code: define.CodeInvalidRequest, Msg: err.Error()}
		}
		n.presenceSync(c)
	case OpBind:
		if _, ok := n.hub.bind(c, op.Group, op.UserID, op.Extend); !ok {
			return &UnicastReply{Code: define.CodeClientOffline}
		}
		n.presenceSync(c) // the write also covers the bind's presence change
	case OpUnbind:
		if !n.hub.unbind(c, op.Group) {
			return &UnicastReply{Code: define.CodeClientOffline}
		}
		n.presenceChanged(c)
	case OpClose:
		c.close(define.DisconnectKicked)
	default:
		return &UnicastReply{Code: define.CodeInvalidRequest}
	}
	return &UnicastReply{}
}

// LocalBroadcast runs a broadcast on this node's hub.
func (n *Node) LocalBroadcast(op *BroadcastOp) *BroadcastReply {
	switch op.Kind {
	case OpGroup, OpSystem:
		group := op.Group
		if op.Kind == OpSystem {
			group = ""
		}
		return &BroadcastReply{Recipients: n.hub.broadcast(op.SystemID, group, messageFrame(op.MessageID, &op.Msg))}
	case OpList:
		return &BroadcastReply{IDs: n.hub.onlineIDs(op.SystemID, op.Group)}
	case OpStats:
		return &BroadcastReply{Stats: n.LocalStats()}
	case OpUser:
		return n.localUserSend(op)
	case OpUserList:
		return n.localUserList(op)
	}
	return &BroadcastReply{}
}

// broadcast runs op here and on every other node.
func (n *Node) broadcast(ctx context.Context, op *BroadcastOp) ([]*BroadcastReply, []string) {
	r := n.getRemote()
	if r == nil {
		return []*BroadcastReply{n.LocalBroadcast(op)}, nil
	}
	return n.broadcastWith(op, func() ([]*BroadcastReply, []string) { return r.Broadcast(ctx, op) })
}

// broadcastWith runs op here while remote runs it elsewhere.
func (n *Node) broadcastWith(op *BroadcastOp, remote func() ([]*BroadcastReply, []string)) ([]*BroadcastReply, []string) {
	var replies []*BroadcastReply
	var unreachable []string
	done := make(chan struct{})
	go func() {
		replies, unreachable = remote()
		close(done)
	}()
	local := n.LocalBroadcast(op)
	<-done
	return append(replies, local), unreachable
}

// groupBroadcast runs a group op here and on the nodes that hold members
// of the group (every node when the presence index cannot tell).
func (n *Node) groupBroadcast(ctx context.Context, op *BroadcastOp) ([]*BroadcastReply, []string) {
	return n.targetedBroadcast(ctx, op, func(p Presence) ([]ident.NodeID, bool) { return p.Holders(op.SystemID, op.Group) })
}

// targetedBroadcast runs op here and on the nodes holders names (every
// node when the presence index cannot tell, none when only this one).
func (n *Node) targetedBroadcast(ctx context.Context, op *BroadcastOp, holders func(Presence) ([]ident.NodeID, bool)) ([]*BroadcastReply, []string) {
	r := n.getRemote()
	p, okP := r.(Presence)
	t, okT := r.(Targeted)
	if !okP || !okT {
		return n.broadcast(ctx, op)
	}
	nodes, all := holders(p)
	switch {
	case all:
		return n.broadcast(ctx, op)
	case len(nodes) == 0:
		return []*BroadcastReply{n.LocalBroadcast(op)}, nil
	}
	return n.broadcastWith(op, func() ([]*BroadcastReply, []string) { return t.BroadcastTo(ctx, nodes, op) })
}

// SendToGroup pushes a message to every member of a group.
func (n *Node) SendToGroup(ctx context.Context, systemID, group string, m *define.Message) (*define.BroadcastResult, error) {
	return n.sendBroadcast(ctx, &BroadcastOp{Kind: OpGroup, SystemID: systemID, Group: group, Msg: *m})
}

// SendToSystem pushes a message to every client of a system.
func (n *Node) SendToSystem(ctx context.Context, systemID string, m *define.Message) (*define.BroadcastResult, error) {
	return n.sendBroadcast(ctx, &BroadcastOp{Kind: OpSystem, SystemID: systemID, Msg: *m})
}

func (n *Node) sendBroadcast(ctx context.Context, op *BroadcastOp) (*define.BroadcastResult, error) {
	op.MessageID = n.msgIDs.Next()
	var replies []*BroadcastReply
	var unreachable []string
	if op.Kind == OpGroup {
		replies, unreachable = n.groupBroadcast(ctx, op)
	} else {
		replies, unreachable = n.broadcast(ctx, op)
	}
	res := &define.BroadcastResult{MessageID: op.MessageID, Unreachable: unreachable}
	for _, r := range replies {
		res.Recipients += r.Recipients
	}
	return res, nil
}

// OnlineList lists the clients of a group ("" = the whole system). In a
// cluster with a presence index it answers from the index, with no RPC.
func (n *Node) OnlineList(ctx context.Context, systemID, group string) (*define.OnlineList, error) {
	if p := n.presence(); p != nil {
		ids := append(n.hub.onlineIDs(systemID, group), p.Clients(systemID, group)...)
		return &define.OnlineList{List: ids, Count: len(ids)}, nil
	}
	replies, unreachable := n.broadcast(ctx, &BroadcastOp{Kind: OpList, SystemID: systemID, Group: group})
	res := &define.OnlineList{List: []string{}, Unreachable: unreachable}
	for _, r := range replies {
		res.List = append(res.List, r.IDs...)
	}
	res.Count = len(res.List)
	return res, nil
}

// emitMemberEvent sends a membership event of the hub to its group.
func (n *Node) emitMemberEvent(systemID string, e *memberEvent) {
	n.emitEvent(systemID, e.group, e.code, &e.ev)
}

// emitEvent pushes a membership event to a group across the cluster.
func (n *Node) emitEvent(systemID, group string, code int, ev *define.MemberEvent) {
	data, err := json.Marshal(ev)
	if err != nil {
		n.log.Error("encode membership event", zap.Error(err))
		return
	}
	// Sent before the bind, unbind or disconnect that caused it returns, so
	// a member never sees a later message before the event; a node that does
	// not answer within EventTimeout misses the event.
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.EventTimeout)
	defer cancel()
	_, _ = n.sendBroadcast(ctx, &BroadcastOp{Kind: OpGroup, SystemID: systemID, Group: group,
		Msg: define.Message{Code: code, Data: data}})
}

// SetHTTPAddr records the address shown for this node on the dashboard.
func (n *Node) SetHTTPAddr(addr string) {
	n.mu.Lock()
	n.httpAddr = addr
	n.mu.Unlock()
}

// LocalStats returns this node's stats.
func (n *Node) LocalStats() *Stats {
	n.mu.RLock()
	addr := n.httpAddr
	n.mu.RUnlock()
	return &Stats{
		NodeID:             n.ID().String(),
		HTTPAddr:           addr,
		StartedAt:          n.started,
		UptimeSeconds:      time.Since(n.started).Seconds(),
		Connections:        n.hub.count(),
		Systems:            n.hub.systemCounts(),
		Groups:             n.hub.groupCount(),
		MessagesPushed:     n.hub.pushed.Load(),
		MessagesDropped:    n.hub.dropped.Load(),
		SlowConsumerCloses: n.hub.slow.Load(),
		RPCErrors:          n.rpcErrors.Load(),
	}
}

// CountRPCError is called by the cluster layer for every failed call.
func (n *Node) CountRPCError() { n.rpcErrors.Add(1) }

// ClusterStats returns the stats of every node that answered in time, this
// one first, and the ids of those that did not.
func (n *Node) ClusterStats(ctx context.Context) ([]*Stats, []string) {
	replies, unreachable := n.broadcast(ctx, &BroadcastOp{Kind: OpStats})
	out := []*Stats{n.LocalStats()}
	for _, r := range replies[:len(replies)-1] { // the last reply is this node's
		if r.Stats != nil {
			out = append(out, r.Stats)
		}
	}
	return out, unreachable
}

// Shutdown closes every client with 1001, letting queues drain until the
// deadline, and stops the hub.
func (n *Node) Shutdown(deadline time.Time) { n.hub.shutdown(deadline) }
