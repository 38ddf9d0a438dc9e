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

// keepQueueCap: a queue buffer up to this capacity stays with the client
// between bursts (a few dozen bytes), so a client that gets one frame at a
// time does not allocate a buffer per frame; larger ones are released when
// the queue empties, so an idle client keeps no big buffer.
const keepQueueCap = 4

// writer owns one connection's write side: the bounded queue, who may write
// (the owner), the non-blocking flush, the blocking write loop, the close
// frame and the lingering close.
//
// Exactly one owner writes at a time. Ownership is taken by the first push
// to an idle queue (push reports claimed), by the upgrade path for the
// welcome frame, or by close; it is held until the queue is empty. The owner
// writes either with flush (non-blocking, on the caller's goroutine) or by
// handing over to the write loop (spawn), the only goroutine a writer ever
// starts. Frames pushed while someone owns the write side just join the
// queue: the owner takes them on its next pass, so frames that pile up
// under load leave together in one writev.
type writer struct {
	c  *Client // told about slow consumers and failures
	nc net.Conn
	rc syscall.RawConn // non-blocking writes; nil where unsupported (rawwrite_*.go)

	mu         sync.Mutex
	queue      []out
	spare      []out // the other half of the double buffer
	owned      bool  // someone owns the write side
	closing    bool  // no more frames are accepted
	closeFrame frame // written after the queue when closing

	// sess is the client's session (nil: sessions are off); guarded by mu.
	// Its frames carry a sequence number and are kept for a resume.
	sess *session
	// movedTo: the session resumed on another connection; frames for this
	// one go there.
	movedTo *Client
	// detached: the connection ended and the session is suspended; no
	// write happens on this writer any more.
	detached bool
	// deflate: the client negotiated permessage-deflate (set before the
	// client is added, then read-only).
	deflate bool
	// keepOnClose: the node is shutting down and closed this connection
	// with 1001; its session outlives the connection (suspended) so that
	// another node can take it over while this one drains.
	keepOnClose bool

	// closeSent: the close frame is out; the reader must not extend its
	// deadline any more.
	closeSent atomic.Bool
}

func (w *writer) init(c *Client, nc net.Conn, cfg *HubConfig) {
	w.c, w.nc = c, nc
	if cfg.WriteDelay <= 0 {
		w.rc = rawConn(nc)
	}
}

// claim takes the write side of an idle writer (the upgrade path, before the
// client is addressable).
func (w *writer) claim() {
	w.mu.Lock()
	w.owned = true
	w.mu.Unlock()
}

// push queues f. accepted is false when the client is closing or its queue
// overflowed (then it is closed as a slow consumer). claimed says the write
// side was idle and the caller now owns it: it must call flush (or hand the
// writer to someone who will). deep says the queue holds a quarter of its
// capacity or more: writes are falling behind.
//
// With a session, a data frame gets the next sequence number and is kept
// for a resume; while the session is suspended it is only kept.
func (w *writer) push(f frame) (accepted, claimed, deep bool) {
	w.mu.Lock()
	if to := w.movedTo; to != nil {
		w.mu.Unlock()
		// The caller would flush this writer, not to's: when the frame
		// claims to's idle write side, flush it here.
		accepted, claimed, deep = to.w.push(f)
		if claimed {
			to.hub.flusher.flushOne(to)
		}
		return accepted, false, deep
	}
	s := w.sess
	numbered := s != nil && isData(f)
	if numbered && s.suspended {
		overflow := !s.keepSuspended(f, w.c.hub.cfg.QueueLength)
		w.mu.Unlock()
		if overflow {
			w.c.sessionOverflow()
			return false, false, false
		}
		return true, false, false
	}
	if w.closing {
		w.mu.Unlock()
		return false, false, false
	}
	if len(w.queue) >= w.c.hub.cfg.QueueLength {
		w.mu.Unlock()
		w.c.slowConsumer()
		return false, false, false
	}
	o := out{f: f}
	if numbered {
		o.seq = s.keep(f, w.c.hub.cfg.QueueLength)
	}
	w.queue = append(w.queue, o)
	if !w.owned {
		w.owned = true
		claimed = true
	}
	deep = 4*len(w.queue) >= w.c.hub.cfg.QueueLength
	w.mu.Unlock()
	return true, claimed, deep
}

// trim drops the idle queue buffer (after the welcome frame: a client that
// is never sent anything keeps none).
func (w *writer) trim() {
	w.mu.Lock()
	if !w.owned && len(w.queue) == 0 {
		w.queue, w.spare = nil, nil
	}
	w.mu.Unlock()
}

// pushFirst puts f at the head of the queue; the caller owns the write side.
func (w *writer) pushFirst(f frame) {
	w.mu.Lock()
	w.queue = append(w.queue, out{})
	copy(w.queue[1:], w.queue)
	w.queue[0] = out{f: f}
	w.mu.Unlock()
}

// maxFlushPasses bounds how often one flush goes back for frames queued
// while it wrote; after that the write loop takes over, so a caller is never
// kept writing for a busy client.
const maxFlushPasses = 2

// flush writes what is queued without blocking, on the caller's goroutine,
// which owns the write side; it gives ownership back when the queue is
// empty. What the socket does not take goes to the write loop. It returns
// how many frames it took off the queue.
func (w *writer) flush() int {
	if w.rc == nil {
		w.spawn()
		return 0
	}
	taken := 0
	var done []out // the last batch, recycled as the spare buffer
	for pass := 0; ; pass++ {
		w.mu.Lock()
		if done != nil && w.spare == nil {
			w.spare = done[:0]
		}
		batch := w.queue
		switch {
		case w.detached:
			// The session was suspended while this flush owned the write
			// side: the writer's part of the connection ends here.
			w.mu.Unlock()
			w.c.done()
			return taken
		case len(batch) == 0 && w.closing:
			// The close frame is written by the loop, which may wait up
			// to the write timeout for it.
			w.mu.Unlock()
			w.spawn()
			return taken
		case len(batch) == 0:
			// Idle again: keep one small buffer for the next frame.
			w.owned = false
			if w.queue == nil {
				w.queue = w.spare
			}
			if cap(w.queue) > keepQueueCap {
				w.queue = nil
			}
			w.spare = nil
			w.mu.Unlock()
			return taken
		case pass == maxFlushPasses:
			w.mu.Unlock()
			w.spawn()
			return taken
		}
		w.queue, w.spare = w.spare, nil
		if w.queue != nil {
			w.queue = w.queue[:0]
		}
		w.mu.Unlock()

		taken += len(batch)
		v := expand(batch)
		n, err := w.writeNonBlocking(v.bufs)
		if err != nil {
			v.release()
			clear(batch)
			w.failed(err)
			return taken
		}
		if rest := v.unwritten(n); len(rest) > 0 {
			// The socket buffer is full: the loop writes the rest, ahead of
			// whatever was queued meanwhile.
			v.release()
			w.mu.Lock()
			q := make([]out, 0, len(rest)+len(w.queue))
			q = append(append(q, rest...), w.queue...)
			clear(w.queue)
			w.queue = q
			w.mu.Unlock()
			clear(batch)
			w.spawn()
			return taken
		}
		v.release()
		clear(batch)
		done = batch
	}
}

// unwritten returns the buffers of bufs after the first n bytes (the first
// one trimmed when it was written in part).
func unwritten(bufs [][]byte, n int) [][]byte {
	for i, b := range bufs {
		if n < len(b) {
			if n > 0 {
				rest := make([][]byte, len(bufs)-i)
				copy(rest, bufs[i:])
				rest[0] = b[n:]
				return rest
			}
			return bufs[i:]
		}
		n -= len(b)
	}
	return nil
}

// writeNonBlocking makes one non-blocking write (or writev) attempt per
// chunk of at most maxIovecs frames, until everything is written or the
// socket takes less than it was given; a full socket buffer is not an
// error. It returns the bytes written.
func (w *writer) writeNonBlocking(batch [][]byte) (int, error) {
	total := 0
	for len(batch) > 0 {
		chunk := batch[:min(len(batch), maxIovecs)]
		want := 0
		for _, f := range chunk {
			want += len(f)
		}
		n, err := w.tryWrite(chunk)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The deadline the write loop set for its last write has
			// passed; it does not apply to this non-blocking attempt.
			_ = w.nc.SetWriteDeadline(time.Time{})
			n, err = w.tryWrite(chunk)
		}
		total += n
		if err != nil || n < want {
			return total, err
		}
		batch = batch[len(chunk):]
	}
	return total, nil
}

// spawn hands the write side to the write loop goroutine.
func (w *writer) spawn() { go w.loop() }

// loop writes queued frames with blocking writes bounded by the write
// timeout until the queue is empty, then gives ownership back; when the
// client is closing it writes the close frame last.
func (w *writer) loop() {
	var bufs net.Buffers
	for {
		w.mu.Lock()
		batch := w.queue
		if w.detached {
			w.mu.Unlock()
			w.c.done()
			return
		}
		if len(batch) == 0 {
			if w.closing {
				cf := w.closeFrame
				w.closeFrame = nil
				w.queue, w.spare = nil, nil
				w.mu.Unlock()
				w.finish(cf)
				return
			}
			w.owned = false
			w.queue, w.spare = nil, nil // an idle client keeps no buffers
			w.mu.Unlock()
			return
		}
		w.queue, w.spare = w.spare, nil
		if w.queue != nil {
			w.queue = w.queue[:0]
		}
		w.mu.Unlock()

		v := expand(batch)
		bufs = append(bufs[:0], v.bufs...)
		_ = w.nc.SetWriteDeadline(time.Now().Add(w.c.hub.cfg.WriteTimeout))
		_, err := bufs.WriteTo(w.nc)
		v.release()
		clear(batch)
		if err != nil {
			w.failed(err)
			return
		}
		w.mu.Lock()
		if w.spare == nil && cap(batch) <= 4*w.c.hub.cfg.QueueLength {
			w.spare = batch[:0]
		}
		w.mu.Unlock()
	}
}

// startClose stops accepting frames and records the close frame (nil
// writes none); with drop, queued frames are discarded. It reports false
// when the writer was already closing. If nobody owns the write side, the
// write loop is started to write the close frame.
func (w *writer) startClose(cf frame, drop bool) bool {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return false
	}
	w.closing = true
	if drop {
		clear(w.queue)
		w.queue = w.queue[:0]
	}
	w.closeFrame = cf
	start := !w.owned
	w.owned = true
	w.mu.Unlock()
	if start {
		w.spawn()
	}
	return true
}

// finish writes the close frame (if any), half-closes, and lets the reader
// wait, bounded, for the client's answering close frame: the lingering
// close, so a proxy in between never turns the close into a reset.
func (w *writer) finish(cf frame) {
	if cf != nil {
		_ = w.nc.SetWriteDeadline(time.Now().Add(w.c.hub.cfg.WriteTimeout))
		if _, err := w.nc.Write(cf); err != nil {
			w.failed(err)
			return
		}
		if tc, ok := w.nc.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		// The client may first have to read what was queued before the
		// close frame, so it gets as long as a write would.
		grace := max(w.c.hub.cfg.WriteTimeout, closeGrace)
		w.closeSent.Store(true)
		_ = w.nc.SetReadDeadline(time.Now().Add(grace))
	}
	w.c.done()
}

// failed ends a connection whose write failed or did not complete within
// the write timeout. The reason is recorded before the socket is closed, so
// the reader, which then fails too, cannot count it as an ordinary close.
// The write side stays owned so nothing writes again.
func (w *writer) failed(err error) {
	d := define.DisconnectWriteError
	if errors.Is(err, os.ErrDeadlineExceeded) {
		d = define.DisconnectWriteTimeout
	}
	if !w.c.suspend() {
		w.c.close(d)
	}
	_ = w.nc.Close()
	w.mu.Lock()
	clear(w.queue)
	w.queue, w.spare, w.closeFrame = nil, nil, nil
	w.mu.Unlock()
	w.c.done()
}
