package servers

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/go-websocket/go-websocket/define"
)

// Client is one WebSocket connection.
//
// Goroutines: a reader for the whole life of the connection (reader.go), and
// a write loop that exists only while the socket cannot take frames at once
// (writer.go), so an idle connection costs one small goroutine.
// gorilla/websocket does the handshake only.
type Client struct {
	ID       string
	SystemID string
	UserID   string

	hub *Hub
	w   writer // its nc is the connection

	// parties counts the reader and the writer's end; the last one to
	// finish closes the socket, so neither races the other's final use of it.
	parties atomic.Int32

	// boundUser is the user bind_to_user gave a client whose connect
	// token named none (written under the system's lock).
	boundUser atomic.Pointer[string]

	// Guarded by the system's lock in the hub.
	groups  map[string]*member
	removed bool

	// Membership events of this client, sent in order (hub.drainEvents).
	evMu      sync.Mutex
	events    []memberEvent
	evRunning bool
}

func newClient(h *Hub, id, systemID, userID string, nc net.Conn) *Client {
	c := &Client{ID: id, SystemID: systemID, UserID: userID, hub: h}
	c.w.init(c, nc, &h.cfg)
	if h.cfg.SessionTTL > 0 {
		c.w.sess = &session{}
	}
	c.parties.Store(2)
	return c
}

// enqueue queues one frame for this client alone and, when its write side
// was idle, writes it at once on the caller's goroutine (one non-blocking
// system call, no goroutine). It never blocks: when the queue is full the
// client is closed as a slow consumer. It reports whether the frame was
// queued. Broadcasts use Hub.deliver, which batches the writes.
func (c *Client) enqueue(f frame) bool {
	var z frame
	ok, claimed, _ := c.w.push(c.compressed(f, &z))
	if claimed {
		c.hub.flusher.flushOne(c)
	}
	return ok
}

// slowConsumer closes a client whose queue overflowed.
func (c *Client) slowConsumer() {
	c.hub.slow.Add(1)
	c.hub.metrics.SlowConsumerCloses.Inc()
	c.closeAsync(define.DisconnectSlowConsumer)
}

// close starts closing the client once: it stops accepting frames, queues
// the close frame (after the pending frames, or instead of them when d.Drop
// is set), and removes the client from the hub, which sends 1002 events.
func (c *Client) close(d define.Disconnect) { c.closeWith(d, false) }

// closeAsync is close with the hub removal moved off the caller's goroutine
// (used when the close happens inside a broadcast, so one slow consumer
// cannot recurse into another).
func (c *Client) closeAsync(d define.Disconnect) { c.closeWith(d, true) }

func (c *Client) closeWith(d define.Disconnect, asyncLeave bool) {
	var cf frame
	if d.Code != 0 {
		cf = closeFrame(d.Code, d.Text)
	}
	if !c.w.startClose(cf, d.Drop) && !c.endSuspended() {
		return
	}
	if asyncLeave {
		go c.hub.remove(c, d.Reason)
	} else {
		c.hub.remove(c, d.Reason)
	}
}

// done marks one party finished; the last one closes the socket and tells
// the hub the connection is gone.
func (c *Client) done() {
	if c.parties.Add(-1) == 0 {
		_ = c.w.nc.Close()
		c.hub.liveDone()
	}
}
