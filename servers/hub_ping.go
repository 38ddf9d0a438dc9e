package servers

import (
	"time"
)

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
