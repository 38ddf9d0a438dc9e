package servers

import (
	"context"

	"github.com/go-websocket/go-websocket/define"
)

// A cork holds back the writes of a run of unicasts (a batch call): frames
// to local clients are queued at once, in order, and each client whose
// write side was idle is written once at the end, so the frames a batch
// sends to one client leave in one system call.
type cork struct {
	claimed []*Client
}

type corkKey struct{}

// Cork returns a context under which SendToClient queues without writing,
// and the function that writes what was queued; the caller must call it.
func (n *Node) Cork(ctx context.Context) (context.Context, func()) {
	ck := &cork{}
	return context.WithValue(ctx, corkKey{}, ck), func() {
		for _, c := range ck.claimed {
			c.hub.flusher.flushOne(c)
		}
		ck.claimed = nil
	}
}

// corkedSend queues a message to a local client under a cork. done is false
// when there is no cork or the client is not this node's: the caller then
// sends as usual.
func (n *Node) corkedSend(ctx context.Context, systemID, clientID, messageID string, m *define.Message) (done bool, err error) {
	ck, _ := ctx.Value(corkKey{}).(*cork)
	if ck == nil {
		return false, nil
	}
	if _, local, ok := n.route(systemID, clientID); !ok || !local {
		return false, nil
	}
	c := n.hub.lookup(systemID, clientID)
	if c == nil {
		return true, define.ErrClientOffline
	}
	ok, claimed, _ := c.w.push(messageFrame(messageID, m))
	if claimed {
		ck.claimed = append(ck.claimed, c)
	}
	if !ok {
		n.hub.countDropped(1)
		return true, define.ErrClientOffline
	}
	n.hub.countPushed(1)
	return true, nil
}
