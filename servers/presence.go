package servers

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// The presence of a client, as the index keeps it (see package rpcwire).
type (
	ClientPresence = rpcwire.ClientPresence
	GroupMember    = rpcwire.GroupMember
)

// LostClient is a client of a node that the cluster declared gone.
type LostClient struct {
	ClientID string
	ClientPresence
}

// Presence is the cluster's index of which node holds which clients in
// which groups. A node with a Remote that also implements Presence routes
// group sends only to the nodes holding members and answers lists from it.
type Presence interface {
	// PresenceChanged records that a local client's presence changed
	// (connected, bound, unbound, disconnected); it is written later.
	PresenceChanged(clientID string)
	// PresenceSync records a change and waits, at most within, until every
	// reachable peer routes by it (or has been told that this node's
	// presence is not current, so that it gets every group message).
	PresenceSync(clientID string, within time.Duration)
	// Holders lists the other nodes that hold members of group. all is
	// true when the index cannot be trusted at the moment (etcd away, this
	// node's view behind): the caller then sends to every node.
	Holders(systemID, group string) (nodes []ident.NodeID, all bool)
	// Clients lists the other nodes' clients of a group ("" = the system).
	Clients(systemID, group string) []string
	// UserHolders lists the other nodes that hold clients of a user, as
	// Holders.
	UserHolders(systemID, userID string) (nodes []ident.NodeID, all bool)
	// UserClients lists the other nodes' clients of a user.
	UserClients(systemID, userID string) []string
}

// Targeted is a Remote that can run a broadcast on chosen nodes only.
type Targeted interface {
	BroadcastTo(ctx context.Context, nodes []ident.NodeID, op *BroadcastOp) ([]*BroadcastReply, []string)
}

func (n *Node) presence() Presence {
	p, _ := n.getRemote().(Presence)
	return p
}

// presenceChanged tells the presence index that c changed; the hub calls
// it after a connect, bind, unbind or disconnect.
func (n *Node) presenceChanged(c *Client) {
	if p := n.presence(); p != nil {
		p.PresenceChanged(c.ID)
	}
}

// presenceSync waits until a bind of c is visible to the peers, so that a
// send_to_group made through any node after the bind returned reaches it.
// It waits at most EventTimeout (half the RPC deadline in a cluster), so a
// bind forwarded from another node still answers within the deadline; a
// peer that did not see the write in time sends every group message to
// every node until it does.
func (n *Node) presenceSync(c *Client) {
	if p := n.presence(); p != nil {
		p.PresenceSync(c.ID, n.opts.EventTimeout)
	}
}

// userBroadcast runs a user op here and on the nodes that hold clients of
// the user (every node when the presence index cannot tell).
func (n *Node) userBroadcast(ctx context.Context, op *BroadcastOp) ([]*BroadcastReply, []string) {
	return n.targetedBroadcast(ctx, op, func(p Presence) ([]ident.NodeID, bool) { return p.UserHolders(op.SystemID, op.UserID) })
}

// presenceUserClients lists a user's clients from the presence index and
// this node's hub; ok is false without an index.
func (n *Node) presenceUserClients(systemID, userID string) (ids []string, ok bool) {
	p := n.presence()
	if p == nil {
		return nil, false
	}
	ids = n.LocalBroadcast(&BroadcastOp{Kind: OpUserList, SystemID: systemID, UserID: userID}).IDs
	return append(ids, p.UserClients(systemID, userID)...), true
}

// PresenceOf returns a local client's presence; false when it is not here.
func (n *Node) PresenceOf(clientID string) (ClientPresence, bool) {
	c := n.hub.clientByID(clientID)
	if c == nil {
		return ClientPresence{}, false
	}
	return n.hub.presenceOf(c)
}

// EachPresence calls fn for every local client.
func (n *Node) EachPresence(fn func(clientID string, p ClientPresence)) {
	for _, c := range n.hub.all() {
		if p, ok := n.hub.presenceOf(c); ok {
			fn(c.ID, p)
		}
	}
}

// NodeLost closes every client with 1012: the cluster declared this node
// gone (it was hung or cut off longer than its lease) and its peers have
// announced its clients as left. No 1002 events are sent for them again.
func (n *Node) NodeLost() {
	clients := n.hub.all()
	n.log.Warn("this node was declared gone by its cluster; closing its clients with 1012 so they reconnect",
		zap.Int("clients", len(clients)))
	for _, c := range clients {
		c.close(define.DisconnectNodeLost)
	}
}

// PeerLost sends a 1002 event for each client of a node that died to this
// node's own members of that client's groups.
func (n *Node) PeerLost(lost []LostClient) {
	n.webhookLost(lost)
	for i := range lost {
		l := &lost[i]
		if !n.eventsOn(l.SystemID) {
			continue
		}
		for g, m := range l.Groups {
			data, err := json.Marshal(define.MemberEvent{ClientID: l.ClientID, GroupName: g, UserID: m.UserID, Extend: m.Extend})
			if err != nil {
				continue
			}
			msg := define.Message{Code: define.MsgCodeLeave, Data: data}
			n.hub.broadcast(l.SystemID, g, messageFrame(n.msgIDs.Next(), &msg))
		}
	}
}

// clientByID returns the local client with id, of any system.
func (h *Hub) clientByID(id string) *Client {
	sh := h.shard(id)
	sh.mu.RLock()
	c := sh.clients[id]
	sh.mu.RUnlock()
	return c
}

// presenceOf reads c's user and groups; false once c has left the hub.
func (h *Hub) presenceOf(c *Client) (ClientPresence, bool) {
	s := h.system(c.SystemID, false)
	if s == nil {
		return ClientPresence{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c.removed {
		return ClientPresence{}, false
	}
	p := ClientPresence{SystemID: c.SystemID, UserID: c.userID()}
	if len(c.groups) > 0 {
		p.Groups = make(map[string]GroupMember, len(c.groups))
		for g, m := range c.groups {
			p.Groups[g] = GroupMember{UserID: m.userID, Extend: m.extend}
		}
	}
	return p, true
}

// The node service's wire (see package rpcwire).
const (
	RPCUnicast   = rpcwire.RPCUnicast
	RPCBroadcast = rpcwire.RPCBroadcast
	RPCPresence  = rpcwire.RPCPresence
)

type (
	PresenceOp    = rpcwire.PresenceOp
	PresenceReply = rpcwire.PresenceReply
)
