package servers

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/go-websocket/go-websocket/define"
)

// Acknowledgements: send_to_client and send_to_user with "ack": true push a
// frame carrying "ack": true; the client answers with a text frame
// {"ack": "<messageId>"}, and the API call answers when the first ack
// arrives or its timeout passes.

// AckRequest asks for a client's ack within Timeout.
type AckRequest struct {
	Timeout time.Duration
}

// ackWait is one message waiting for its first ack.
type ackWait struct {
	systemID string
	done     chan struct{}
	once     sync.Once
}

// wait reports whether the ack arrived within d (or before ctx ended).
func (w *ackWait) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// ackWaits are the messages of this node waiting for an ack, by messageId.
type ackWaits struct {
	mu sync.Mutex
	m  map[string]*ackWait
}

func (a *ackWaits) expect(systemID, messageID string) *ackWait {
	w := &ackWait{systemID: systemID, done: make(chan struct{})}
	a.mu.Lock()
	if a.m == nil {
		a.m = map[string]*ackWait{}
	}
	a.m[messageID] = w
	a.mu.Unlock()
	return w
}

func (a *ackWaits) forget(messageID string) {
	a.mu.Lock()
	delete(a.m, messageID)
	a.mu.Unlock()
}

// acked records a client's ack; one for an unknown messageId, or from a
// client of another system, is ignored.
func (a *ackWaits) acked(systemID, messageID string) {
	a.mu.Lock()
	w := a.m[messageID]
	a.mu.Unlock()
	if w != nil && w.systemID == systemID {
		w.once.Do(func() { close(w.done) })
	}
}

// remoteAckWait is how long a node that holds the recipient waits for its
// ack when the API call came from another node: the ack must come back
// within that node's RPC deadline, so at most the event timeout (half of
// it).
func (n *Node) remoteAckWait(d time.Duration) time.Duration {
	return min(d, n.opts.EventTimeout)
}

// withAck adds "ack": true as the frame payload's last key.
func withAck(f frame) frame {
	body := f[headerSize(f) : len(f)-1]
	p := make([]byte, 0, len(body)+len(`,"ack":true}`))
	p = append(append(p, body...), `,"ack":true}`...)
	return newFrame(opText, p)
}

// parseAck reads a client frame {"ack": "<messageId>"} (whitespace
// allowed), without allocating; ok is false for anything else.
func parseAck(p []byte) (id []byte, ok bool) {
	p = bytes.TrimSpace(p)
	if len(p) < 2 || p[0] != '{' || p[len(p)-1] != '}' {
		return nil, false
	}
	p = bytes.TrimSpace(p[1 : len(p)-1])
	rest, ok := bytes.CutPrefix(p, []byte(`"ack"`))
	if !ok {
		return nil, false
	}
	rest = bytes.TrimSpace(rest)
	if len(rest) == 0 || rest[0] != ':' {
		return nil, false
	}
	rest = bytes.TrimSpace(rest[1:])
	if len(rest) < 2 || rest[0] != '"' || rest[len(rest)-1] != '"' {
		return nil, false
	}
	id = rest[1 : len(rest)-1]
	if len(id) == 0 || len(id) > 64 || bytes.ContainsAny(id, "\"\\") {
		return nil, false
	}
	return id, true
}

// clientText handles a text frame a client sent: an ack, an upstream
// message, or nothing.
func (n *Node) clientText(c *Client, p []byte) {
	if id, ok := parseAck(p); ok {
		n.acks.acked(c.SystemID, string(id))
		return
	}
	n.upstream(c, p)
}

// SendToClientAck pushes a message that asks the client for an ack and
// answers when the ack arrives or the timeout passes.
func (n *Node) SendToClientAck(ctx context.Context, systemID, clientID string, m *define.Message, ack AckRequest) (*define.AckedSend, error) {
	id := n.msgIDs.Next()
	w := n.acks.expect(systemID, id)
	defer n.acks.forget(id)
	r, err := n.unicast(ctx, &UnicastOp{Kind: OpSend, SystemID: systemID, ClientID: clientID, MessageID: id, Msg: *m,
		Ack: true, AckWait: n.remoteAckWait(ack.Timeout)})
	if err := replyErr(r, err); err != nil {
		return nil, err
	}
	acked := r.Acked || w.wait(ctx, ack.Timeout)
	return &define.AckedSend{MessageID: id, Recipients: 1, Acked: acked}, nil
}

// localAckedSend pushes an ack-requesting frame to a client of this node.
// When the call came from another node, the ack arrives here: this node
// waits for it (at most op.AckWait) and answers whether it came.
func (n *Node) localAckedSend(c *Client, op *UnicastOp) *UnicastReply {
	var w *ackWait
	if w = n.acks.expectHere(op.SystemID, op.MessageID); w != nil {
		defer n.acks.forget(op.MessageID)
	}
	if !c.enqueue(withAck(messageFrame(op.MessageID, &op.Msg))) {
		n.hub.countDropped(1)
		return &UnicastReply{Code: define.CodeClientOffline}
	}
	n.hub.countPushed(1)
	if w == nil {
		return &UnicastReply{} // the caller of this node waits itself
	}
	return &UnicastReply{Acked: w.wait(context.Background(), op.AckWait)}
}

// expectHere registers a wait for messageID on the node that holds the
// recipient, unless the API call runs on this node too (it registered the
// wait and waits itself): nil then.
func (a *ackWaits) expectHere(systemID, messageID string) *ackWait {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m[messageID] != nil {
		return nil
	}
	w := &ackWait{systemID: systemID, done: make(chan struct{})}
	if a.m == nil {
		a.m = map[string]*ackWait{}
	}
	a.m[messageID] = w
	return w
}
