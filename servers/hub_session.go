package servers

import (
	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
)

// replace puts c, a resumed session's new connection, where old was: in the
// id index, in its system and in every group, with the same membership. No
// membership event is sent: for the other members nothing changed.
func (h *Hub) replace(old, c *Client) {
	h.liveMu.Lock()
	h.live++
	h.liveMu.Unlock()
	s := h.system(c.SystemID, true)
	s.mu.Lock()
	delete(s.clients, old)
	s.clients[c] = struct{}{}
	if uid := old.userID(); uid != "" {
		s.unindexUser(old, uid)
		if c.UserID == "" {
			c.boundUser.Store(&uid)
		}
		s.indexUser(c, uid)
	}
	for g, m := range old.groups {
		members := s.groups[g]
		delete(members, old)
		members[c] = m
	}
	c.groups, old.groups = old.groups, nil
	c.removed, old.removed = old.removed, true
	s.mu.Unlock()
	sh := h.shard(c.ID)
	sh.mu.Lock()
	sh.clients[c.ID] = c
	sh.mu.Unlock()
	h.metrics.Connects.Inc()
	if h.closing.Load() {
		// shutdown may have listed the clients before this one was indexed.
		c.close(define.DisconnectShutdown)
	}
}

// memberships lists c's groups (for a session moving to another node).
func (h *Hub) memberships(c *Client) []rpcwire.Membership {
	s := h.system(c.SystemID, false)
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]rpcwire.Membership, 0, len(c.groups))
	for g, m := range c.groups {
		out = append(out, rpcwire.Membership{Group: g, UserID: m.userID, Extend: m.extend})
	}
	return out
}

// restoreMember puts c in a group it had before its session moved here,
// without a join event (the group hears one 1003 instead).
func (h *Hub) restoreMember(c *Client, group, userID, extend string) {
	s := h.system(c.SystemID, true)
	s.mu.Lock()
	if c.removed {
		s.mu.Unlock()
		return
	}
	m := s.addMember(c, group, userID, extend)
	h.node.webhook(hookJoin, c, group, m, "")
	s.mu.Unlock()
	h.node.presenceChanged(c)
}
