package servers

import (
	"errors"
	"net"
	"time"

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
func (c *Client) readLoop() {
	r := wsframe.NewReader(c.nc)
	r.Limit = c.hub.cfg.ReadLimit
	err := c.readFrames(r)
	var ne net.Error
	switch {
	case errors.Is(err, errClosed):
		// The close handshake is under way; close() was called already.
	case errors.Is(err, wsframe.ErrTooBig):
		c.close(define.DisconnectTooBig)
		c.linger(r)
	case errors.Is(err, wsframe.ErrInvalidUTF8):
		c.close(define.DisconnectInvalidUTF8)
		c.linger(r)
	case errors.Is(err, wsframe.ErrProtocol):
		c.close(define.DisconnectProtocol)
		c.linger(r)
	case errors.As(err, &ne) && ne.Timeout():
		c.close(define.DisconnectHeartbeat)
	default:
		c.close(define.DisconnectConnLost)
	}
	c.done()
}

// readFrames runs until the connection fails; it always returns an error.
func (c *Client) readFrames(r *wsframe.Reader) error {
	pongWait := c.hub.cfg.PongWait
	for {
		if !c.w.closeSent.Load() {
			if err := c.nc.SetReadDeadline(time.Now().Add(pongWait)); err != nil {
				return err
			}
		}
		// Data frames are skipped by the next call: nothing reads them yet.
		f, err := r.Next()
		if err != nil {
			return err
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

// linger reads on after the server refused a frame, discarding, until the
// client's close frame, EOF or a short deadline, so the socket is not
// closed with unread bytes: the kernel would answer those with a reset, and
// a proxy in between would pass on the reset instead of the close frame.
// The writer extends the deadline once the close frame is out (the client
// needs time to read it).
func (c *Client) linger(r *wsframe.Reader) {
	if !c.w.closeSent.Load() {
		_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	}
	_ = r.Drain()
}
