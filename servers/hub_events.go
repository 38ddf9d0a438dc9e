package servers

import (
	"github.com/go-websocket/go-websocket/define"
)

// memberEvent is a 1001/1002 event waiting to be sent.
type memberEvent struct {
	code  int
	group string
	ev    define.MemberEvent
}

// queueEvent records a membership event of c; the caller holds the system's
// lock, so events are queued in the order membership changed. It reports
// whether the caller must drain the queue (no one else is draining it).
func (c *Client) queueEvent(code int, group string, m *member) bool {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.events = append(c.events, memberEvent{code: code, group: group, ev: define.MemberEvent{
		ClientID: c.ID, GroupName: group, UserID: m.userID, Extend: m.extend}})
	if c.evRunning {
		return false
	}
	c.evRunning = true
	return true
}

// drainEvents sends c's queued membership events in order, without holding
// any lock while sending: concurrent binds and unbinds of one client cannot
// overtake each other, and a member never sees a 1002 before its 1001.
func (h *Hub) drainEvents(c *Client) {
	for {
		c.evMu.Lock()
		batch := c.events
		c.events = nil
		if len(batch) == 0 {
			c.evRunning = false
			c.evMu.Unlock()
			return
		}
		c.evMu.Unlock()
		for i := range batch {
			h.node.emitMemberEvent(c.SystemID, &batch[i])
		}
	}
}
