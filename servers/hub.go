package servers

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/metrics"
)

// The hub owns this node's clients, in files by concept:
//
//	hub.go          the Hub, connect (add) and disconnect (remove), counters
//	hub_index.go    the client index by id, sharded
//	hub_groups.go   systems and their groups; bind, unbind, snapshots
//	hub_events.go   membership events (1001/1002), in order per client
//	hub_ping.go     the node's single ping loop
//	hub_shutdown.go drain on shutdown
//	flush.go        when queued frames are written (fan-out batching)
//	writer.go       one connection's write side
//
// Lock order (never take an earlier lock while holding a later one, and
// never hold any of them across I/O, an RPC or a call into the node):
//
//	Hub.mu (systems map) -> system.mu (a tenant's clients and groups) ->
//	Client.evMu (its pending events) -> shard.mu (id index) ->
//	writer.mu (a client's queue) -> flusher.mu (FIFO)
//
// system.mu is released before events are sent, before the id index is
// touched on remove, and before any frame is written; writer.mu is held only
// to move frames in or out of the queue.

// hubNode is what the hub asks of its node.
type hubNode interface {
	// eventsOn says whether a system gets membership events.
	eventsOn(systemID string) bool
	// emitMemberEvent sends a 1001/1002 event to a group, across the cluster.
	emitMemberEvent(systemID string, e *memberEvent)
	// presenceChanged is told of every connect, bind, unbind and disconnect
	// (the cluster's presence index).
	presenceChanged(c *Client)
	// clientText handles a text frame a client sent (acks, upstream messages).
	clientText(c *Client, payload []byte)
	// clustered says whether other nodes exist (that could take sessions
	// over while this one shuts down).
	clustered() bool
	// webhook is told of every connect, disconnect, join and leave while
	// system.mu is held, so events leave in the order membership changed; it
	// only queues (leaf locks of its own), never blocks.
	webhook(kind hookKind, c *Client, group string, m *member, reason string)
}

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
	// SessionTTL keeps a dropped client's session this long for a resume
	// (0: sessions off).
	SessionTTL time.Duration
	// Compression negotiates permessage-deflate with clients that offer it.
	Compression bool
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

	node hubNode

	stopPing chan struct{}
	pingDone chan struct{}
	stopOnce sync.Once

	flusher flusher
}

// NewHub returns an empty hub and starts its ping loop.
func NewHub(cfg HubConfig, m *metrics.Metrics, node hubNode) *Hub {
	h := &Hub{
		cfg: cfg, metrics: m, seed: maphash.MakeSeed(), systems: map[string]*system{}, node: node,
		stopPing: make(chan struct{}), pingDone: make(chan struct{}),
	}
	h.flusher.delay = cfg.WriteDelay
	h.flusher.compress = cfg.Compression && cfg.SessionTTL <= 0
	for i := range h.shards {
		h.shards[i].clients = map[string]*Client{}
	}
	go h.pingLoop()
	return h
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
	s.indexUser(c, c.UserID)
	h.node.webhook(hookConnect, c, "", nil, "")
	s.mu.Unlock()
	sh := h.shard(c.ID)
	sh.mu.Lock()
	sh.clients[c.ID] = c
	sh.mu.Unlock()
	h.metrics.Connects.Inc()
	h.node.presenceChanged(c)
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
	s.unindexUser(c, c.userID())
	// A node declared gone closes its clients silently (its peers have
	// announced them already), and a session that moved to another node
	// leaves no group (members get one 1003 from there).
	events := h.node.eventsOn(c.SystemID) && reason != define.ReasonNodeLost && reason != define.ReasonMoved
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
		h.node.webhook(hookLeave, c, g, m, reason)
	}
	h.node.webhook(hookDisconnect, c, "", nil, reason)
	c.groups = nil
	s.mu.Unlock()

	sh := h.shard(c.ID)
	sh.mu.Lock()
	delete(sh.clients, c.ID)
	sh.mu.Unlock()
	h.total.Add(-1)
	h.metrics.Connections.WithLabelValues(c.SystemID).Dec()
	h.metrics.Disconnects.WithLabelValues(reason).Inc()
	h.node.presenceChanged(c)
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
