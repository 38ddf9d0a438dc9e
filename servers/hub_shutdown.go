package servers

import (
	"time"

	"github.com/go-websocket/go-websocket/define"
)

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
		// A session outlives its connection: another node may take it
		// over while this one drains.
		if !c.shutdownKeepingSession() {
			c.close(define.DisconnectShutdown)
		}
	}
	select {
	case <-done:
		h.endSessions(deadline)
		return
	case <-time.After(time.Until(deadline)):
	}
	for _, c := range clients {
		_ = c.w.nc.Close()
	}
	// Closing the sockets ends every reader and writer promptly.
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	h.endSessions(deadline)
}

// endSessions waits, until the deadline, for suspended sessions to be taken
// over by other nodes, then ends the rest (1002 to their groups).
func (h *Hub) endSessions(deadline time.Time) {
	if h.cfg.SessionTTL <= 0 {
		return
	}
	if !h.node.clustered() {
		deadline = time.Now() // nobody else can take a session
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		waiting := 0
		for _, c := range h.all() {
			if c.suspendedSession() {
				waiting++
			}
		}
		if waiting == 0 || !time.Now().Before(deadline) {
			break
		}
		<-tick.C
	}
	for _, c := range h.all() {
		c.close(define.DisconnectShutdown)
	}
}
