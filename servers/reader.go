package servers

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"

	"github.com/go-websocket/go-websocket/define"
)

// The server reads client frames itself, straight from the socket, instead
// of through gorilla's reader: client frames are only discarded (besides
// control frames), so there is nothing to buffer, and the reader goroutine's
// call stack stays shallow enough for the smallest goroutine stack. That is
// most of an idle connection's memory.

// errProtocol is a client frame that breaks RFC 6455; the connection is
// closed with 1002.
var errProtocol = errors.New("websocket protocol error")

// errTooBig is a message over the read limit; closed with 1009.
var errTooBig = errors.New("message over the read limit")

// errClosed is the client's close frame; the server has echoed it.
var errClosed = errors.New("client closed")

// readLoop reads and discards client frames, answers pings, keeps the read
// deadline moving (any frame proves the client alive), and ends the
// connection on error, timeout, a protocol error or a close frame.
func (c *Client) readLoop() {
	err := c.readFrames()
	var ne net.Error
	switch {
	case errors.Is(err, errClosed):
		// The close handshake is under way; close() was called already.
	case errors.Is(err, errTooBig):
		c.close(define.DisconnectTooBig)
	case errors.Is(err, errProtocol):
		c.close(define.DisconnectProtocol)
	case errors.As(err, &ne) && ne.Timeout():
		c.close(define.DisconnectHeartbeat)
	default:
		c.close(define.DisconnectConnLost)
	}
	c.done()
}

// readFrames runs until the connection fails; it always returns an error.
func (c *Client) readFrames() error {
	var hdr [14]byte
	pongWait := c.hub.cfg.PongWait
	limit := c.hub.cfg.ReadLimit
	var msgLen int64   // bytes of the current (possibly fragmented) message
	inMessage := false // a data frame without FIN was seen
	for {
		if !c.w.closeSent.Load() {
			if err := c.nc.SetReadDeadline(time.Now().Add(pongWait)); err != nil {
				return err
			}
		}
		if _, err := io.ReadFull(c.nc, hdr[:2]); err != nil {
			return err
		}
		fin := hdr[0]&0x80 != 0
		if hdr[0]&0x70 != 0 { // RSV bits: no extension was negotiated
			return errProtocol
		}
		op := hdr[0] & 0x0F
		if hdr[1]&0x80 == 0 { // client frames must be masked
			return errProtocol
		}
		n := int64(hdr[1] & 0x7F)
		ext := 0
		switch n {
		case 126:
			ext = 2
		case 127:
			ext = 8
		}
		if _, err := io.ReadFull(c.nc, hdr[2:2+ext+4]); err != nil {
			return err
		}
		switch ext {
		case 2:
			n = int64(binary.BigEndian.Uint16(hdr[2:4]))
		case 8:
			u := binary.BigEndian.Uint64(hdr[2:10])
			if u > 1<<62 {
				return errProtocol
			}
			n = int64(u)
		}
		mask := hdr[2+ext : 2+ext+4]

		if op >= 0x8 { // control frame
			if !fin || n > 125 {
				return errProtocol
			}
			payload := make([]byte, n)
			if _, err := io.ReadFull(c.nc, payload); err != nil {
				return err
			}
			unmask(payload, mask)
			switch op {
			case opPing:
				c.enqueue(newFrame(opPong, payload))
			case opPong:
			case opClose:
				return c.closeReceived(payload)
			default:
				return errProtocol
			}
			continue
		}

		switch op {
		case 0x0: // continuation
			if !inMessage {
				return errProtocol
			}
		case 0x1, 0x2: // text, binary
			if inMessage {
				return errProtocol
			}
			msgLen = 0
		default:
			return errProtocol
		}
		msgLen += n
		if msgLen > limit {
			return errTooBig
		}
		if n > 0 {
			if _, err := io.CopyN(io.Discard, c.nc, n); err != nil {
				return err
			}
		}
		inMessage = !fin
	}
}

// closeReceived answers a client's close frame with the same status code,
// as RFC 6455 asks.
func (c *Client) closeReceived(payload []byte) error {
	code := define.CloseNormal
	switch {
	case len(payload) >= 2:
		code = int(binary.BigEndian.Uint16(payload))
		if !validCloseCode(code) {
			code = define.CloseProtocolError
		}
	case len(payload) == 1:
		code = define.CloseProtocolError
	}
	c.close(define.DisconnectClientClose.WithCode(code))
	return errClosed
}

func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

func unmask(b, key []byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}
