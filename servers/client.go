package servers

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-websocket/go-websocket/define"
)

// closeGrace is the least time the server waits for the client's close
// frame after it wrote its own, before it drops the TCP connection.
const closeGrace = 2 * time.Second

// Client is one WebSocket connection.
//
// Goroutines: a reader for the whole life of the connection (reader.go), and
// a writer that exists only while the queue holds frames, so an idle
// connection costs one small goroutine. All socket writes go through the
// writer, one at a time, as raw frames: a batch of queued frames leaves in one
// writev. gorilla/websocket does the handshake only.
type Client struct {
	ID       string
	SystemID string
	UserID   string

	hub *Hub
	nc  net.Conn
	rc  syscall.RawConn // for non-blocking inline writes; nil if unavailable

	mu         sync.Mutex
	queue      []frame
	spare      []frame
	writing    bool  // a writer goroutine owns the socket's write side
	closing    bool  // no more frames are accepted
	closeFrame frame // written after the queue when closing
	reason     string

	// closeSent: the close frame is out; the reader must not extend its
	// deadline any more.
	closeSent atomic.Bool

	// parties counts the reader and the closer; the last one to finish
	// closes the socket, so neither races the other's final use of it.
	parties atomic.Int32

	// Guarded by the system's lock in the hub.
	groups  map[string]*member
	removed bool

	// Membership events of this client, sent in order (hub.drainEvents).
	evMu      sync.Mutex
	events    []memberEvent
	evRunning bool
}

func newClient(h *Hub, id, systemID, userID string, nc net.Conn) *Client {
	c := &Client{ID: id, SystemID: systemID, UserID: userID, hub: h, nc: nc}
	if sc, ok := nc.(syscall.Conn); ok && h.cfg.WriteDelay <= 0 {
		c.rc, _ = sc.SyscallConn()
	}
	c.parties.Store(2)
	return c
}

// enqueue queues one frame. It never blocks: when the queue is full the
// client is closed as a slow consumer. It reports whether the frame was queued.
func (c *Client) enqueue(f frame) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.hub.cfg.QueueLength {
		c.mu.Unlock()
		c.hub.slow.Add(1)
		c.hub.metrics.SlowConsumerCloses.Inc()
		c.closeAsync(define.DisconnectSlowConsumer)
		return false
	}
	if !c.writing && c.rc != nil && len(c.queue) == 0 {
		// Nothing is queued or being written: try to hand the frame to the
		// kernel right here, with one non-blocking write. Most frames leave
		// this way, with no goroutine started and no scheduler wake-up.
		c.writing = true
		c.mu.Unlock()
		return c.writeInline(f)
	}
	c.queue = append(c.queue, f)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.hub.startWriter(c)
	}
	return true
}

// writeInline writes f without blocking while the caller owns the write side
// (c.writing is set). What the socket did not take, and whatever was queued
// meanwhile, goes to a writer goroutine.
func (c *Client) writeInline(f frame) bool {
	n, err := c.tryWrite(f)
	if err != nil {
		c.writeFailed()
		return false
	}
	c.mu.Lock()
	if n < len(f) {
		rest := f[n:]
		c.queue = append(c.queue, nil)
		copy(c.queue[1:], c.queue)
		c.queue[0] = rest
	} else if len(c.queue) == 0 && !c.closing {
		c.writing = false
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	go c.writeLoop()
	return true
}

// tryWrite makes one non-blocking write attempt; a full socket buffer is not
// an error (n is what the kernel took).
func (c *Client) tryWrite(f frame) (int, error) {
	var n int
	var werr error
	write := func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), f)
			if werr != syscall.EINTR {
				return true // one attempt; never wait for writability here
			}
		}
	}
	err := c.rc.Write(write)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline a writer goroutine set for its last write has
		// passed; it does not apply to this non-blocking attempt.
		_ = c.nc.SetWriteDeadline(time.Time{})
		err = c.rc.Write(write)
	}
	if err != nil {
		return 0, err
	}
	switch {
	case werr == syscall.EAGAIN:
		return 0, nil
	case werr != nil:
		return 0, werr
	case n < 0:
		return 0, nil
	}
	return n, nil
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
	code, text, drop, reason := d.Code, d.Text, d.Drop, d.Reason
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.reason = reason
	if drop {
		clear(c.queue)
		c.queue = c.queue[:0]
	}
	if code != 0 {
		c.closeFrame = closeFrame(code, text)
	}
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	if asyncLeave {
		go c.hub.remove(c, reason)
	} else {
		c.hub.remove(c, reason)
	}
}

// writeLoop writes queued frames until the queue is empty, then exits; when
// the client is closing it writes the close frame last and hands the socket
// to the reader (or closes it) instead.
func (c *Client) writeLoop() {
	var bufs net.Buffers
	for {
		c.mu.Lock()
		batch := c.queue
		if len(batch) == 0 {
			if c.closing {
				cf := c.closeFrame
				c.closeFrame = nil
				c.queue, c.spare = nil, nil
				c.mu.Unlock()
				c.finishWriting(cf)
				return
			}
			c.writing = false
			c.queue, c.spare = nil, nil // an idle client keeps no buffers
			c.mu.Unlock()
			return
		}
		c.queue, c.spare = c.spare[:0], nil
		c.mu.Unlock()

		bufs = bufs[:0]
		for _, f := range batch {
			bufs = append(bufs, f)
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
		_, err := bufs.WriteTo(c.nc)
		clear(batch)
		if err != nil {
			c.writeFailed()
			return
		}
		c.mu.Lock()
		if c.spare == nil && cap(batch) <= 4*c.hub.cfg.QueueLength {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

// finishWriting writes the close frame (if any) and ends the writer's part.
func (c *Client) finishWriting(cf frame) {
	if cf != nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
		if _, err := c.nc.Write(cf); err != nil {
			c.writeFailed()
			return
		}
		// Half-close so the client sees the close frame and then EOF, and
		// let the reader wait for its answering close frame, bounded. The
		// client may first have to read what was queued before the close
		// frame, so it gets as long as a write would.
		if tc, ok := c.nc.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		grace := c.hub.cfg.WriteTimeout
		if grace < closeGrace {
			grace = closeGrace
		}
		c.closeSent.Store(true)
		_ = c.nc.SetReadDeadline(time.Now().Add(grace))
	}
	c.done()
}

// writeFailed ends a connection whose write did not complete in time or
// failed. The writer slot stays taken so nothing writes again.
func (c *Client) writeFailed() {
	_ = c.nc.Close()
	c.mu.Lock()
	clear(c.queue)
	c.queue, c.spare, c.closeFrame = nil, nil, nil
	c.mu.Unlock()
	c.close(define.DisconnectWriteError)
	c.done()
}

// done marks one party finished; the last one closes the socket and tells
// the hub the connection is gone.
func (c *Client) done() {
	if c.parties.Add(-1) == 0 {
		_ = c.nc.Close()
		c.hub.liveDone()
	}
}
