package servers

import (
	"errors"
	"net"
	"time"
	"unicode/utf8"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/wsframe"
)

// The server reads client frames itself, with pkg/wsframe straight from the
// socket, instead of through gorilla's reader: data payloads are skipped
// without being buffered (control frames are all the server needs), and the
// reader goroutine's call stack stays shallow enough for the smallest
// goroutine stack. That is most of an idle connection's memory.

// errClosed is the client's close frame; the server has answered it.
var errClosed = errors.New("client closed")

// readLoop reads client frames, answers pings, keeps the read deadline
// moving (any frame proves the client alive), and ends the connection on
// error, timeout, a protocol error or a close frame.
//
// The goroutine waits for the client in readFrames, for the whole life of
// an idle connection: the functions on its stack then are kept small (the
// verdict is handled in readEnded, not here), so that its stack stays the
// smallest a goroutine can have.
func (c *Client) readLoop() {
	r := wsframe.NewReader(c.w.nc)
	r.Limit = c.hub.cfg.ReadLimit
	r.Compression = c.w.deflate
	c.readEnded(r, c.readFrames(r))
	c.done()
}

// readEnded ends the connection for the reason the reader stopped.
func (c *Client) readEnded(r *wsframe.Reader, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errClosed):
		// The close handshake is under way; close() was called already.
	case errors.Is(err, wsframe.ErrTooBig):
		c.refused(r, define.DisconnectTooBig)
	case errors.Is(err, wsframe.ErrInvalidUTF8):
		c.refused(r, define.DisconnectInvalidUTF8)
	case errors.Is(err, wsframe.ErrProtocol):
		c.refused(r, define.DisconnectProtocol)
	case errors.As(err, &ne) && ne.Timeout():
		// Without the client's close frame a session is kept, suspended.
		if !c.suspend() {
			c.close(define.DisconnectHeartbeat)
		}
	default:
		if !c.suspend() {
			c.close(define.DisconnectConnLost)
		}
	}
}

// readFrames runs until the connection fails; it always returns an error.
func (c *Client) readFrames(r *wsframe.Reader) error {
	pongWait := c.hub.cfg.PongWait
	for {
		if !c.w.closeSent.Load() {
			if err := c.w.nc.SetReadDeadline(time.Now().Add(pongWait)); err != nil {
				return err
			}
		}
		// Data frames the loop does not read are skipped by the next call.
		f, err := r.Next()
		if err != nil {
			return err
		}
		if f.Op == wsframe.OpText && f.Fin && f.Len > 0 {
			// A whole text message (acks): read it, within the read limit.
			if err := c.textMessage(r, f.RSV1, f.Len); err != nil {
				return err
			}
			continue
		}
		switch f.Op {
		case wsframe.OpPing:
			c.enqueue(newFrame(opPong, f.Payload))
		case wsframe.OpClose:
			return c.closeReceived(f.Payload)
		}
	}
}

// closeReceived answers a client's close frame: with the same code, as
// RFC 6455 asks, with 1000 when it carried none, with 1002 when the code is
// not one a peer may send, and with 1007 when the reason is not UTF-8.
func (c *Client) closeReceived(payload []byte) error {
	code, _, err := wsframe.ParseClose(payload)
	switch {
	case c.keepingSession() && c.suspend():
		// The answer to the node's shutdown close: the session stays.
	case errors.Is(err, wsframe.ErrInvalidUTF8):
		c.close(define.DisconnectInvalidUTF8)
	case err != nil:
		c.close(define.DisconnectProtocol)
	case code == wsframe.CloseNoStatus:
		c.close(define.DisconnectClientClose)
	default:
		c.close(define.DisconnectClientClose.WithCode(code))
	}
	return errClosed
}

// maxDiscard bounds what the server reads of a refused message before it
// answers (a message announcing more is answered at once).
const maxDiscard = 16 << 20

// refused closes the connection for a frame the server refused, without
// the close ever turning into a reset. The rest of the refused message,
// which the client may still be sending, is read first (bounded by maxDiscard and
// closeGrace): a proxy (nginx) tears down both sides as soon as the server
// ends its side, and resets the client's side if client bytes are still
// unread there, so the client would see 1006 instead of the close code.
// After the close frame the reader reads on, discarding, until the client's
// close frame, EOF or a short deadline, so the socket is not closed with
// unread bytes either (the kernel would answer those with a reset).
func (c *Client) refused(r *wsframe.Reader, d define.Disconnect) {
	_ = c.w.nc.SetReadDeadline(time.Now().Add(closeGrace))
	discardErr := r.DiscardMessage(maxDiscard)
	c.close(d)
	var ne net.Error
	if errors.As(discardErr, &ne) && ne.Timeout() {
		return // the client is not sending: nothing to wait for
	}
	if !c.w.closeSent.Load() {
		_ = c.w.nc.SetReadDeadline(time.Now().Add(closeGrace))
	}
	_ = r.Drain()
}

// textMessage reads a whole text message of a client (inflating a
// compressed one, within the read limit) and hands it to the node.
func (c *Client) textMessage(r *wsframe.Reader, compressed bool, n int64) error {
	p, err := r.ReadPayload(make([]byte, 0, n))
	if err != nil {
		return err
	}
	if compressed {
		if p, err = inflate(p, c.hub.cfg.ReadLimit); err != nil {
			if errors.Is(err, errInflatedTooBig) {
				return wsframe.ErrTooBig
			}
			return wsframe.ErrProtocol
		}
		if !utf8.Valid(p) {
			return wsframe.ErrInvalidUTF8
		}
	}
	c.hub.node.clientText(c, p)
	return nil
}
