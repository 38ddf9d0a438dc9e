package servers

import (
	"sync"

	"github.com/go-websocket/go-websocket/define"
)

// member is what a group knows of one of its clients.
type member struct {
	userID string
	extend string
}

// system is one tenant's clients and groups on this node.
type system struct {
	mu      sync.RWMutex
	clients map[*Client]struct{}
	groups  map[string]map[*Client]*member
	users   map[string]map[*Client]struct{} // users.go
}

func (h *Hub) system(id string, create bool) *system {
	h.mu.RLock()
	s := h.systems[id]
	h.mu.RUnlock()
	if s != nil || !create {
		return s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s = h.systems[id]; s == nil {
		s = &system{clients: map[*Client]struct{}{}, groups: map[string]map[*Client]*member{}}
		h.systems[id] = s
	}
	return s
}

// bind puts c in group; joined is false when it was already a member (then
// only userID and extend change).
func (h *Hub) bind(c *Client, group, userID, extend string) (joined, ok bool) {
	if c.UserID != "" {
		// A connect token vouched for this user: it wins over the API's.
		userID = c.UserID
	}
	s := h.system(c.SystemID, true)
	s.mu.Lock()
	if c.removed {
		s.mu.Unlock()
		return false, false
	}
	if m := c.groups[group]; m != nil {
		m.userID, m.extend = userID, extend
		s.mu.Unlock()
		return false, true
	}
	m := s.addMember(c, group, userID, extend)
	h.node.webhook(hookJoin, c, group, m, "")
	drain := h.node.eventsOn(c.SystemID) && c.queueEvent(define.MsgCodeJoin, group, m)
	s.mu.Unlock()
	if drain {
		h.drainEvents(c)
	}
	return true, true
}

// unbind takes c out of group (1002 to the remaining members). ok is false
// when the client is gone.
func (h *Hub) unbind(c *Client, group string) (ok bool) {
	s := h.system(c.SystemID, true)
	s.mu.Lock()
	if c.removed {
		s.mu.Unlock()
		return false
	}
	m := c.groups[group]
	if m == nil {
		s.mu.Unlock()
		return true
	}
	delete(c.groups, group)
	members := s.groups[group]
	delete(members, c)
	if len(members) == 0 {
		delete(s.groups, group)
	}
	h.node.webhook(hookLeave, c, group, m, "")
	drain := h.node.eventsOn(c.SystemID) && c.queueEvent(define.MsgCodeLeave, group, m)
	s.mu.Unlock()
	if drain {
		h.drainEvents(c)
	}
	return true
}

var snapPool = sync.Pool{New: func() any { s := make([]*Client, 0, 64); return &s }}

// snapshot copies the clients of a group ("" = the whole system) so the
// caller can write to them without holding the system's lock.
func (h *Hub) snapshot(systemID, group string) *[]*Client {
	p := snapPool.Get().(*[]*Client)
	out := (*p)[:0]
	if s := h.system(systemID, false); s != nil {
		s.mu.RLock()
		if group == "" {
			for c := range s.clients {
				out = append(out, c)
			}
		} else {
			for c := range s.groups[group] {
				out = append(out, c)
			}
		}
		s.mu.RUnlock()
	}
	*p = out
	return p
}

func releaseSnapshot(p *[]*Client) {
	clear(*p)
	*p = (*p)[:0]
	snapPool.Put(p)
}

// broadcast queues f to every client of a group ("" = whole system) and
// returns how many took it.
func (h *Hub) broadcast(systemID, group string, f frame) int {
	p := h.snapshot(systemID, group)
	n := h.flusher.deliver(*p, f)
	h.countPushed(n)
	h.countDropped(len(*p) - n)
	releaseSnapshot(p)
	return n
}

// onlineIDs lists the ids of a group or of the whole system.
func (h *Hub) onlineIDs(systemID, group string) []string {
	p := h.snapshot(systemID, group)
	ids := make([]string, 0, len(*p))
	for _, c := range *p {
		ids = append(ids, c.ID)
	}
	releaseSnapshot(p)
	return ids
}

// systemCounts returns the number of clients per system.
func (h *Hub) systemCounts() map[string]int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string]int, len(h.systems))
	for id, s := range h.systems {
		s.mu.RLock()
		out[id] = len(s.clients)
		s.mu.RUnlock()
	}
	return out
}

// groupCount returns the number of non-empty groups on this node.
func (h *Hub) groupCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, s := range h.systems {
		s.mu.RLock()
		n += len(s.groups)
		s.mu.RUnlock()
	}
	return n
}

// addMember puts c in group; the caller holds s.mu.
func (s *system) addMember(c *Client, group, userID, extend string) *member {
	m := &member{userID: userID, extend: extend}
	if c.groups == nil {
		c.groups = map[string]*member{}
	}
	c.groups[group] = m
	members := s.groups[group]
	if members == nil {
		members = map[*Client]*member{}
		s.groups[group] = members
	}
	members[c] = m
	return m
}
