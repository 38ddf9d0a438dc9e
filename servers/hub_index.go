package servers

import (
	"hash/maphash"
	"sync"
)

// shard is one part of the client index by id.
type shard struct {
	mu      sync.RWMutex
	clients map[string]*Client
}

func (h *Hub) shard(id string) *shard {
	return &h.shards[maphash.String(h.seed, id)%shardCount]
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

// count returns how many clients this node holds.
func (h *Hub) count() int { return int(h.total.Load()) }

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
