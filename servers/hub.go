package servers

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/metrics"
)

const shardCount = 64

// HubConfig holds the per-connection settings.
type HubConfig struct {
	PingInterval            time.Duration
	PongWait                time.Duration
	WriteTimeout            time.Duration
	WriteDelay              time.Duration // coalescing window; 0 writes at once
	QueueLength             int
	ReadLimit               int64
	MaxConnections          int
	MaxConnectionsPerSystem int
}

// member is what a group knows of one of its clients.
type member struct {
	userID string
	extend string
}

type shard struct {
	mu      sync.RWMutex
	clients map[string]*Client
}

// system is one tenant's clients and groups on this node.
type system struct {
	mu      sync.RWMutex
	clients map[*Client]struct{}
	groups  map[string]map[*Client]*member
}

// Hub owns this node's clients: an index by id, sharded so lookups from many
// API goroutines do not contend, and per system the set of clients and the
// group index.
type Hub struct {
	cfg     HubConfig
	metrics *metrics.Metrics
	seed    maphash.Seed
	shards  [shardCount]shard

	mu      sync.RWMutex
	systems map[string]*system

	total   atomic.Int64
	closing atomic.Bool

	// Plain copies of some metrics, for the stats endpoint.
	pushed, dropped, slow atomic.Uint64

	// live counts connections until their socket is closed; shutdown waits
	// for it to reach zero.
	liveMu   sync.Mutex
	live     int
	liveZero chan struct{}

	// eventsOn says whether a system gets membership events; emit sends
	// one to a group (across the cluster). Both are set by the node.
	eventsOn func(systemID string) bool
	emit     func(systemID string, e *memberEvent)
	// presence is told of every connect, bind, unbind and disconnect (the
	// cluster's presence index); set by the node.
	presence func(c *Client)

	stopPing chan struct{}
	pingDone chan struct{}
	stopOnce sync.Once

	flusher flusher
}

// NewHub returns an empty hub and starts its ping loop.
func NewHub(cfg HubConfig, m *metrics.Metrics) *Hub {
	h := &Hub{
		cfg: cfg, metrics: m, seed: maphash.MakeSeed(), systems: map[string]*system{},
		stopPing: make(chan struct{}), pingDone: make(chan struct{}), presence: func(*Client) {},
	}
	h.flusher.delay = cfg.WriteDelay
	for i := range h.shards {
		h.shards[i].clients = map[string]*Client{}
	}
	go h.pingLoop()
	return h
}

func (h *Hub) shard(id string) *shard {
	return &h.shards[maphash.String(h.seed, id)%shardCount]
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

// errLimit says which connection limit refused a client.
type errLimit string

func (e errLimit) Error() string { return string(e) }

// add registers a client; from then on it is addressable.
func (h *Hub) add(c *Client) error {
	h.liveMu.Lock()
	if h.closing.Load() {
		h.liveMu.Unlock()
		return errLimit("node is shutting down")
	}
	h.live++
	h.liveMu.Unlock()
	// The system's limit is checked first, under its lock, so a connect it
	// refuses never holds one of the node's slots, even for a moment.
	s := h.system(c.SystemID, true)
	s.mu.Lock()
	if max := h.cfg.MaxConnectionsPerSystem; max > 0 && len(s.clients) >= max {
		s.mu.Unlock()
		h.liveDone()
		return errLimit("connection limit of this system reached")
	}
	if n := h.total.Add(1); h.cfg.MaxConnections > 0 && n > int64(h.cfg.MaxConnections) {
		h.total.Add(-1)
		s.mu.Unlock()
		h.liveDone()
		return errLimit("connection limit of this node reached")
	}
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	sh := h.shard(c.ID)
	sh.mu.Lock()
	sh.clients[c.ID] = c
	sh.mu.Unlock()
	h.metrics.Connects.Inc()
	h.presence(c)
	h.metrics.Connections.WithLabelValues(c.SystemID).Inc()
	if h.closing.Load() {
		// shutdown may have listed the clients before this one was indexed.
		c.close(define.DisconnectShutdown)
	}
	return nil
}

// liveDone is called once per added connection when its socket is closed.
func (h *Hub) liveDone() {
	h.liveMu.Lock()
	h.live--
	if h.live == 0 && h.liveZero != nil {
		close(h.liveZero)
		h.liveZero = nil
	}
	h.liveMu.Unlock()
}

// remove unregisters a client once and reports the groups it left.
func (h *Hub) remove(c *Client, reason string) {
	s := h.system(c.SystemID, false)
	if s == nil {
		return
	}
	s.mu.Lock()
	if c.removed {
		s.mu.Unlock()
		return
	}
	c.removed = true
	delete(s.clients, c)
	// A node declared gone closes its clients silently: its peers have
	// announced them already.
	events := h.eventsOn(c.SystemID) && reason != define.ReasonNodeLost
	drain := false
	for g, m := range c.groups {
		members := s.groups[g]
		delete(members, c)
		if len(members) == 0 {
			delete(s.groups, g)
		}
		if events {
			drain = c.queueEvent(define.MsgCodeLeave, g, m) || drain
		}
	}
	c.groups = nil
	s.mu.Unlock()

	sh := h.shard(c.ID)
	sh.mu.Lock()
	delete(sh.clients, c.ID)
	sh.mu.Unlock()
	h.total.Add(-1)
	h.metrics.Connections.WithLabelValues(c.SystemID).Dec()
	h.metrics.Disconnects.WithLabelValues(reason).Inc()
	h.presence(c)
	if drain {
		h.drainEvents(c)
	}
}

func (h *Hub) countPushed(n int) {
	if n > 0 {
		h.pushed.Add(uint64(n))
		h.metrics.MessagesPushed.Add(float64(n))
	}
}

func (h *Hub) countDropped(n int) {
	if n > 0 {
		h.dropped.Add(uint64(n))
		h.metrics.MessagesDropped.Add(float64(n))
	}
}

// lookup returns the client with id if it belongs to systemID.
func (h *Hub) lookup(systemID, id string) *Client {
	sh := h.shard(id)
	sh.mu.RLock()
	c := sh.clients[id]
	sh.mu.RUnlock()
	if c == nil || c.SystemID != systemID {
		return nil
	}
	return c
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
	drain := h.eventsOn(c.SystemID) && c.queueEvent(define.MsgCodeJoin, group, m)
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
	drain := h.eventsOn(c.SystemID) && c.queueEvent(define.MsgCodeLeave, group, m)
	s.mu.Unlock()
	if drain {
		h.drainEvents(c)
	}
	return true
}

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
			h.emit(c.SystemID, &batch[i])
		}
	}
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

// count returns how many clients this node holds.
func (h *Hub) count() int { return int(h.total.Load()) }

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

var pingFrame = newFrame(opPing, nil)

// pingLoop pings every client each PingInterval: one loop for the node
// instead of a timer per connection.
func (h *Hub) pingLoop() {
	defer close(h.pingDone)
	t := time.NewTicker(h.cfg.PingInterval)
	defer t.Stop()
	var batch []*Client
	for {
		select {
		case <-h.stopPing:
			return
		case <-t.C:
		}
		for i := range h.shards {
			sh := &h.shards[i]
			sh.mu.RLock()
			for _, c := range sh.clients {
				batch = append(batch, c)
			}
			sh.mu.RUnlock()
			h.flusher.deliver(batch, pingFrame)
			clear(batch)
			batch = batch[:0]
		}
	}
}

// all returns every registered client.
func (h *Hub) all() []*Client {
	var out []*Client
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, c := range sh.clients {
			out = append(out, c)
		}
		sh.mu.RUnlock()
	}
	return out
}

// shutdown refuses new clients, closes every client with 1001 after its
// queue drains, and waits until all sockets are closed or the deadline
// passes, when it closes the rest. It stops the ping loop.
func (h *Hub) shutdown(deadline time.Time) {
	h.stopOnce.Do(func() { h.drain(deadline) })
}

func (h *Hub) drain(deadline time.Time) {
	h.liveMu.Lock()
	h.closing.Store(true)
	done := make(chan struct{})
	if h.live == 0 {
		close(done)
	} else {
		h.liveZero = done
	}
	h.liveMu.Unlock()
	close(h.stopPing)
	<-h.pingDone
	clients := h.all()
	for _, c := range clients {
		c.close(define.DisconnectShutdown)
	}
	select {
	case <-done:
		return
	case <-time.After(time.Until(deadline)):
	}
	for _, c := range clients {
		_ = c.nc.Close()
	}
	// Closing the sockets ends every reader and writer promptly.
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}
