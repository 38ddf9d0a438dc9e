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
		c.close(define.DisconnectShutdown)
	}
	select {
	case <-done:
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
}
