package servers

import (
	"context"
	"fmt"

	"github.com/go-websocket/go-websocket/define"
)

// Users: a client belongs to a user when its connect token carries a
// userId (Client.UserID, fixed for the connection) or when a backend binds
// it with bind_to_user. Each system on a node indexes its clients by user,
// so a user's clients are found without a scan.

// userID returns the user the client belongs to ("" when none).
func (c *Client) userID() string {
	if c.UserID != "" {
		return c.UserID
	}
	if p := c.boundUser.Load(); p != nil {
		return *p
	}
	return ""
}

// indexUser adds c to its user's set; the caller holds s.mu.
func (s *system) indexUser(c *Client, uid string) {
	if uid == "" {
		return
	}
	if s.users == nil {
		s.users = map[string]map[*Client]struct{}{}
	}
	set := s.users[uid]
	if set == nil {
		set = map[*Client]struct{}{}
		s.users[uid] = set
	}
	set[c] = struct{}{}
}

// unindexUser takes c out of its user's set; the caller holds s.mu.
func (s *system) unindexUser(c *Client, uid string) {
	if set := s.users[uid]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(s.users, uid)
		}
	}
}

// errTokenUser: bind_to_user cannot change the user a connect token named.
type errTokenUser string

func (e errTokenUser) Error() string {
	return fmt.Sprintf("userId: this client's connect token binds it to user %q, which cannot be changed", string(e))
}

// bindUser makes c a client of user uid. ok is false when c is gone.
func (h *Hub) bindUser(c *Client, uid string) (ok bool, err error) {
	s := h.system(c.SystemID, true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.removed {
		return false, nil
	}
	if c.UserID != "" {
		if c.UserID != uid {
			return true, errTokenUser(c.UserID)
		}
		return true, nil
	}
	if old := c.userID(); old != uid {
		s.unindexUser(c, old)
		c.boundUser.Store(&uid)
		s.indexUser(c, uid)
	}
	return true, nil
}

// userSnapshot copies the clients of a user (release with releaseSnapshot).
func (h *Hub) userSnapshot(systemID, uid string) *[]*Client {
	p := snapPool.Get().(*[]*Client)
	out := (*p)[:0]
	if s := h.system(systemID, false); s != nil {
		s.mu.RLock()
		for c := range s.users[uid] {
			out = append(out, c)
		}
		s.mu.RUnlock()
	}
	*p = out
	return p
}

// ---------------------------------------------------------------- node

// BindToUser makes a client one of a user's clients.
func (n *Node) BindToUser(ctx context.Context, systemID, clientID, userID string) error {
	r, err := n.unicast(ctx, &UnicastOp{Kind: OpBindUser, SystemID: systemID, ClientID: clientID, UserID: userID})
	return replyErr(r, err)
}

// SendToUser pushes a message to every online client of a user, on every
// node. With ack, the answer waits for the first client's ack or the
// timeout.
func (n *Node) SendToUser(ctx context.Context, systemID, userID string, m *define.Message, ack *AckRequest) (*define.UserSendResult, error) {
	op := &BroadcastOp{Kind: OpUser, SystemID: systemID, UserID: userID, MessageID: n.msgIDs.Next(), Msg: *m}
	var wait *ackWait
	if ack != nil {
		op.Ack = true
		op.AckWait = n.remoteAckWait(ack.Timeout)
		wait = n.acks.expect(systemID, op.MessageID)
		defer n.acks.forget(op.MessageID)
	}
	replies, unreachable := n.userBroadcast(ctx, op)
	res := &define.UserSendResult{MessageID: op.MessageID, Unreachable: unreachable}
	remoteAcked := false
	for _, r := range replies {
		res.Recipients += r.Recipients
		remoteAcked = remoteAcked || r.Acked
	}
	if ack != nil {
		acked := remoteAcked || (res.Recipients > 0 && wait.wait(ctx, ack.Timeout))
		res.Acked = &acked
	}
	return res, nil
}

// UserClients lists the online clients of a user over the cluster.
func (n *Node) UserClients(ctx context.Context, systemID, userID string) (*define.OnlineList, error) {
	if ids, ok := n.presenceUserClients(systemID, userID); ok {
		return &define.OnlineList{List: ids, Count: len(ids)}, nil
	}
	replies, unreachable := n.broadcast(ctx, &BroadcastOp{Kind: OpUserList, SystemID: systemID, UserID: userID})
	res := &define.OnlineList{List: []string{}, Unreachable: unreachable}
	for _, r := range replies {
		res.List = append(res.List, r.IDs...)
	}
	res.Count = len(res.List)
	return res, nil
}

// IsUserOnline reports whether a user has an online client.
func (n *Node) IsUserOnline(ctx context.Context, systemID, userID string) (bool, error) {
	l, err := n.UserClients(ctx, systemID, userID)
	if err != nil {
		return false, err
	}
	return l.Count > 0, nil
}

// localUserSend delivers a user message to this node's clients of the user.
func (n *Node) localUserSend(op *BroadcastOp) *BroadcastReply {
	f := messageFrame(op.MessageID, &op.Msg)
	var wait *ackWait
	if op.Ack {
		f = withAck(f)
		if wait = n.acks.expectHere(op.SystemID, op.MessageID); wait != nil {
			defer n.acks.forget(op.MessageID)
		}
	}
	p := n.hub.userSnapshot(op.SystemID, op.UserID)
	got := n.hub.flusher.deliver(*p, f)
	n.hub.countPushed(got)
	n.hub.countDropped(len(*p) - got)
	releaseSnapshot(p)
	r := &BroadcastReply{Recipients: got}
	if wait != nil && got > 0 {
		r.Acked = wait.wait(context.Background(), op.AckWait)
	}
	return r
}

// localUserList lists this node's clients of a user.
func (n *Node) localUserList(op *BroadcastOp) *BroadcastReply {
	p := n.hub.userSnapshot(op.SystemID, op.UserID)
	ids := make([]string, 0, len(*p))
	for _, c := range *p {
		ids = append(ids, c.ID)
	}
	releaseSnapshot(p)
	return &BroadcastReply{IDs: ids}
}
