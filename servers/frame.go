package servers

import (
	"strconv"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/wsframe"
)

// WebSocket opcodes of the frames the server writes.
const (
	opText  = wsframe.OpText
	opClose = wsframe.OpClose
	opPing  = wsframe.OpPing
	opPong  = wsframe.OpPong
)

// A frame is a complete server-to-client WebSocket frame (header and
// unmasked payload). Frames are immutable once built, so one broadcast frame
// is shared by every recipient's queue and written without copying.
type frame []byte

// newFrame wraps payload in a frame of the opcode.
func newFrame(opcode byte, payload []byte) frame { return wsframe.New(opcode, payload) }

// closeFrame builds a close frame with a status code and a short reason.
func closeFrame(code int, reason string) frame { return wsframe.Close(code, reason) }

// messageFrame encodes a pushed message in the wire order of SPEC section 3:
// {"messageId","sendUserId","code","msg","data"}; data goes out byte for byte
// as the backend sent it (null when absent).
func messageFrame(messageID string, m *define.Message) frame {
	data := m.Data
	if len(data) == 0 {
		data = []byte("null")
	}
	n := 64 + len(messageID) + len(m.SendUserID) + len(m.Msg) + len(data)
	b := make([]byte, 10, 10+n+n/8)
	b = append(b, `{"messageId":`...)
	b = wsframe.AppendString(b, messageID)
	b = append(b, `,"sendUserId":`...)
	b = wsframe.AppendString(b, m.SendUserID)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(m.Code), 10)
	b = append(b, `,"msg":`...)
	b = wsframe.AppendString(b, m.Msg)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	// Put the header right before the payload inside the reserved 10 bytes.
	payload := len(b) - 10
	h := wsframe.HeaderLen(payload)
	wsframe.AppendHeader(b[10-h:10-h], wsframe.FinBit|opText, payload)
	return frame(b[10-h:])
}

// envelopeFrame encodes {"code":0,"msg":...,"data":{"clientId":...}} and the
// error envelope of a refused connect.
func envelopeFrame(code int, msg string, clientID string) frame {
	b := make([]byte, 0, 96+len(msg)+len(clientID))
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"msg":`...)
	b = wsframe.AppendString(b, msg)
	if clientID != "" {
		b = append(b, `,"data":{"clientId":`...)
		b = wsframe.AppendString(b, clientID)
		b = append(b, `}}`...)
	} else {
		b = append(b, `,"data":null}`...)
	}
	return newFrame(opText, b)
}
