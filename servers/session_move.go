package servers

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// In a cluster a resume may reach a node other than the one that holds the
// session (the load balancer picked another). That node takes the session
// over RPC (OpTakeSession): the holder hands over the kept frames, the
// sequence, the user and the groups, and forgets the client without a
// leave; the new node gives the client a new clientId (naming itself),
// puts it in the same groups and sends each group one 1003 event instead
// of a leave and a join. The old clientId keeps working for sessionTTL: the
// old node forwards unicasts for it to the new one.

// movedClients remembers where moved sessions went, by old clientId.
type movedClients struct {
	mu sync.Mutex
	m  map[string]movedTo
}

type movedTo struct {
	node  ident.NodeID
	id    string
	until time.Time
}

func (mc *movedClients) add(old string, to movedTo) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.m == nil {
		mc.m = map[string]movedTo{}
	}
	now := time.Now()
	for id, t := range mc.m {
		if now.After(t.until) {
			delete(mc.m, id)
		}
	}
	mc.m[old] = to
}

func (mc *movedClients) get(old string) (movedTo, bool) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	t, ok := mc.m[old]
	if !ok || time.Now().After(t.until) {
		return movedTo{}, false
	}
	return t, true
}

// clustered says whether this node has peers.
func (n *Node) clustered() bool { return n.getRemote() != nil }

// forwardMoved runs a unicast for a clientId whose session moved to another
// node on that node, under the new clientId. ok is false when the id did
// not move (or its forwarding time is over).
func (n *Node) forwardMoved(op *UnicastOp) (*UnicastReply, bool) {
	to, ok := n.moved.get(op.ClientID)
	if !ok {
		return nil, false
	}
	r := n.getRemote()
	if r == nil {
		return nil, false
	}
	fwd := *op
	fwd.ClientID = to.id
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.EventTimeout)
	defer cancel()
	rep, err := r.Unicast(ctx, to.node, &fwd)
	if err != nil {
		var e *define.Error
		if errors.As(err, &e) {
			return &UnicastReply{Code: e.Code, Msg: e.Msg}, true
		}
		return &UnicastReply{Code: define.CodeUnavailable}, true
	}
	return rep, true
}

// canExport reports whether c's session can move with the frames after
// lastSeq.
func (c *Client) canExport(lastSeq uint64) bool {
	w := &c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sess
	if s == nil || s.ended || w.movedTo != nil || (w.closing && !w.detached) {
		return false
	}
	_, ok := s.after(lastSeq)
	return ok
}

// export ends c's session here and returns it for another node; a
// connection the server still thought alive is dropped without a close
// frame.
func (c *Client) export(lastSeq uint64) (*rpcwire.Session, bool) {
	w := &c.w
	w.mu.Lock()
	s := w.sess
	if s == nil || s.ended || w.movedTo != nil || (w.closing && !w.detached) {
		w.mu.Unlock()
		return nil, false
	}
	replay, ok := s.after(lastSeq)
	if !ok {
		w.mu.Unlock()
		return nil, false
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.ended = true
	live := !w.detached
	idle := w.release()
	w.mu.Unlock()
	st := &rpcwire.Session{Seq: s.seq, UserID: c.userID(), TokenUser: c.UserID != ""}
	for _, o := range replay {
		st.Frames = append(st.Frames, rpcwire.KeptFrame{Frame: o.f, Seq: o.seq})
	}
	if live {
		_ = c.w.nc.Close()
		if idle {
			c.done()
		}
	}
	return st, true
}

// giveSession answers OpTakeSession on the node that holds the session.
func (n *Node) giveSession(op *UnicastOp) *UnicastReply {
	c := n.hub.lookup(op.SystemID, op.ClientID)
	if c == nil {
		return &UnicastReply{Code: define.CodeClientOffline}
	}
	if !c.canExport(op.LastSeq) {
		// The client came back elsewhere but its session cannot continue:
		// it ends here (1002) rather than linger until the TTL.
		c.close(define.DisconnectSessionExpired)
		return &UnicastReply{Code: define.CodeClientOffline}
	}
	to, _, ok := n.route(op.SystemID, op.NewClientID)
	if !ok {
		return &UnicastReply{Code: define.CodeInvalidRequest, Msg: "newClientId is not a clientId of this system"}
	}
	groups := n.hub.memberships(c)
	// Out of the hub first, so no new frame finds the client; frames
	// queued before are kept by the session and go with it.
	n.hub.remove(c, define.ReasonMoved)
	st, ok := c.export(op.LastSeq)
	if !ok {
		return &UnicastReply{Code: define.CodeClientOffline}
	}
	st.Groups = groups
	n.moved.add(op.ClientID, movedTo{node: to, id: op.NewClientID, until: time.Now().Add(n.hub.cfg.SessionTTL)})
	return &UnicastReply{Session: st}
}

// resumeElsewhere takes over the session of prevID from the node that holds
// it and connects the client under a new clientId. It reports false when
// there is nothing to take (the caller connects the client as new).
func (n *Node) resumeElsewhere(nc net.Conn, systemID, userID, prevID string, last uint64) bool {
	holder, local, ok := n.route(systemID, prevID)
	r := n.getRemote()
	if !ok || local || r == nil {
		return false
	}
	id := n.minter.Mint(systemID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*n.opts.EventTimeout)
	rep, err := r.Unicast(ctx, holder, &UnicastOp{Kind: OpTakeSession, SystemID: systemID, ClientID: prevID,
		LastSeq: last, NewClientID: id})
	cancel()
	if err != nil || rep.Code != 0 || rep.Session == nil {
		return false
	}
	st := rep.Session
	user := userID
	if st.TokenUser {
		user = st.UserID
	}
	leave := func() {
		// The session cannot continue here: its groups hear it left.
		for _, m := range st.Groups {
			n.emitEvent(systemID, m.Group, define.MsgCodeLeave, &define.MemberEvent{ClientID: prevID,
				GroupName: m.Group, UserID: m.UserID, Extend: m.Extend})
		}
	}
	if userID != "" && userID != st.UserID {
		leave() // another user's connect token: not this session's client
		return false
	}
	c := newClient(n.hub, id, systemID, user, nc)
	s := &session{seq: st.Seq}
	for _, f := range st.Frames {
		o := out{f: f.Frame, seq: f.Seq}
		s.kept = append(s.kept, o)
		c.w.queue = append(c.w.queue, o)
	}
	c.w.sess = s
	c.w.claim()
	if err := n.hub.add(c); err != nil {
		n.log.Info("moved session could not continue", zap.String("clientId", prevID), zap.Error(err))
		leave()
		return false
	}
	if !st.TokenUser && st.UserID != "" {
		_, _ = n.hub.bindUser(c, st.UserID)
	}
	for _, m := range st.Groups {
		n.hub.restoreMember(c, m.Group, m.UserID, m.Extend)
	}
	n.metrics.SessionResumes.Inc()
	c.w.pushFirst(welcomeFrameMoved(id, n.resumeTokens.mint(systemID, id), prevID))
	c.w.flush()
	go c.readLoop()
	for _, m := range st.Groups {
		n.emitEvent(systemID, m.Group, define.MsgCodeMove, &define.MemberEvent{ClientID: id, PreviousClientID: prevID,
			GroupName: m.Group, UserID: m.UserID, Extend: m.Extend})
	}
	return true
}
