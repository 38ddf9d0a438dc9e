package servers

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// flusher decides when queued frames are written, for every client of the
// hub.
//
// A frame to one client whose queue is idle is written at once by the
// caller (one non-blocking system call). A broadcast first queues its frame
// to every recipient; the recipients whose write side was idle (the ones it
// claimed) join a node-wide FIFO of clients waiting for a write, and then
// the broadcasting goroutine flushes as many clients from the head of that
// FIFO as it claimed. So:
//
//   - on an idle node a broadcast writes its own recipients at once: no
//     added latency;
//   - when broadcasts overlap, a client waits in the FIFO while others queue
//     behind it, and all its frames leave in one writev: the busier the node,
//     the more frames per system call;
//   - the FIFO is empty whenever no broadcast is in flight: each claimed
//     client is flushed by someone;
//   - publishers cannot outrun the sockets: when a broadcast finds a
//     recipient's queue a quarter full, it also writes, from the FIFO, at
//     least as many frames as it queued, so queues stay far from the
//     slow-consumer limit while the node keeps up.
//
// With a write delay configured, claimed clients start their write loop at
// the end of the delay window instead.
type flusher struct {
	delay time.Duration

	mu   sync.Mutex
	fifo []*Client
	head int
	// active counts broadcasts in flight (see leave).
	active atomic.Int32
	// compress: clients may have negotiated permessage-deflate.
	compress bool

	// Clients whose write loop starts when the write delay ends.
	delayMu sync.Mutex
	delayed []*Client
	armed   bool
}

// flushOne writes a client the caller has just claimed.
func (fl *flusher) flushOne(c *Client) {
	if fl.delay > 0 {
		fl.later(c)
		return
	}
	c.w.flush()
}

var claimPool = sync.Pool{New: func() any { s := make([]*Client, 0, 64); return &s }}

// deliver queues f to every client and writes it (see flusher); it returns
// how many clients took it. It returns once its share of the writes is done,
// so broadcasts made one after another reach each client in order.
func (fl *flusher) deliver(clients []*Client, f frame) int {
	if len(clients) == 1 {
		if clients[0].enqueue(f) {
			return 1
		}
		return 0
	}
	if fl.delay <= 0 {
		fl.active.Add(1)
		defer fl.leave()
	}
	var z frame // f compressed, made for the first client that takes it
	if parts := min(runtime.GOMAXPROCS(0), len(clients)/parallelChunk); parts > 1 && fl.delay <= 0 && fl.active.Load() == 1 && fl.waiting() == 0 {
		// No other broadcast is in flight: a big broadcast is queued and
		// written by one goroutine per processor, each for its share, so
		// the first frames leave while the rest are still being queued.
		if fl.compress && isData(f) {
			z = deflateFrame(f)
		}
		var total atomic.Int64
		var wg sync.WaitGroup
		per := (len(clients) + parts - 1) / parts
		for start := 0; start < len(clients); start += per {
			part := clients[start:min(start+per, len(clients))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				zp := z
				total.Add(int64(fl.deliverPart(part, f, &zp)))
			}()
		}
		wg.Wait()
		return int(total.Load())
	}
	return fl.deliverPart(clients, f, &z)
}

// deliverPart queues f to clients and pays for the writes it claimed.
func (fl *flusher) deliverPart(clients []*Client, f frame, z *frame) int {
	p := claimPool.Get().(*[]*Client)
	claimed := (*p)[:0]
	n, behind := 0, false
	for _, c := range clients {
		ok, claim, deep := c.w.push(c.compressed(f, z))
		if ok {
			n++
		}
		if claim {
			claimed = append(claimed, c)
		}
		behind = behind || deep
	}
	switch {
	case fl.delay > 0:
		for _, c := range claimed {
			fl.later(c)
		}
	case behind:
		fl.push(claimed)
		fl.pay(len(claimed), n)
	case len(claimed) > 0:
		if ahead := fl.push(claimed); ahead > 0 {
			// Busy: other clients wait ahead of these. Flushing half as
			// many lets the ones left behind gather more frames for their
			// write; the last broadcast to leave writes whatever is left.
			fl.pay((len(claimed)+1)/2, 0)
		} else {
			fl.pay(len(claimed), 0)
		}
	}
	clear(claimed)
	*p = claimed[:0]
	claimPool.Put(p)
	return n
}

// push appends clients to the FIFO and returns how many were waiting ahead
// of them.
func (fl *flusher) push(cs []*Client) int {
	fl.mu.Lock()
	ahead := len(fl.fifo) - fl.head
	fl.fifo = append(fl.fifo, cs...)
	fl.mu.Unlock()
	return ahead
}

// leave ends a broadcast; the last one in flight writes every client still
// waiting, so nothing stays queued on a node that went quiet. (Clients
// pushed after that drain belong to a broadcast still in flight, which
// drains in turn if it is the last to leave.)
func (fl *flusher) leave() {
	if fl.active.Add(-1) != 0 {
		return
	}
	var buf [32]*Client
	for {
		got := fl.take(buf[:])
		if len(got) == 0 {
			return
		}
		for i, c := range got {
			c.w.flush()
			got[i] = nil
		}
	}
}

// waiting returns how many clients wait in the FIFO.
func (fl *flusher) waiting() int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return len(fl.fifo) - fl.head
}

// take moves up to len(dst) clients from the head of the FIFO into dst.
func (fl *flusher) take(dst []*Client) []*Client {
	fl.mu.Lock()
	k := copy(dst, fl.fifo[fl.head:])
	clear(fl.fifo[fl.head : fl.head+k])
	fl.head += k
	switch {
	case fl.head == len(fl.fifo):
		fl.fifo, fl.head = fl.fifo[:0], 0
		if cap(fl.fifo) > 1<<16 {
			fl.fifo = nil // a burst is over: do not keep its buffer
		}
	case fl.head > 4096 && fl.head > len(fl.fifo)/2:
		live := copy(fl.fifo, fl.fifo[fl.head:])
		clear(fl.fifo[live:])
		fl.fifo, fl.head = fl.fifo[:live], 0
	}
	fl.mu.Unlock()
	return dst[:k]
}

// A broadcast that claimed more than 2*parallelChunk clients writes with
// one goroutine per processor (parts of at least parallelChunk clients), so
// a big group is written by several cores at once.
const parallelChunk = 256

// pay flushes clients from the FIFO's head until at least claims clients
// and frames frames are written, or the FIFO is empty.
func (fl *flusher) pay(claims, frames int) {
	workers := min(runtime.GOMAXPROCS(0), claims/parallelChunk)
	if workers < 2 {
		fl.payPart(claims, frames)
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		c := claims/workers + btoi(i < claims%workers)
		f := frames/workers + btoi(i < frames%workers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fl.payPart(c, f)
		}()
	}
	wg.Wait()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (fl *flusher) payPart(claims, frames int) {
	var buf [32]*Client
	for claims > 0 || frames > 0 {
		got := fl.take(buf[:min(len(buf), max(claims, frames/4, 1))])
		if len(got) == 0 {
			return
		}
		for i, c := range got {
			frames -= c.w.flush()
			claims--
			got[i] = nil
		}
	}
}

// later starts c's write loop at the end of the current write delay window,
// together with every other client that got frames meanwhile.
func (fl *flusher) later(c *Client) {
	fl.delayMu.Lock()
	fl.delayed = append(fl.delayed, c)
	if !fl.armed {
		fl.armed = true
		time.AfterFunc(fl.delay, fl.startDelayed)
	}
	fl.delayMu.Unlock()
}

func (fl *flusher) startDelayed() {
	fl.delayMu.Lock()
	list := fl.delayed
	fl.delayed = nil
	fl.armed = false
	fl.delayMu.Unlock()
	for _, c := range list {
		c.w.spawn()
	}
}
