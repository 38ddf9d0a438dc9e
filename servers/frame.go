package servers

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	"github.com/go-websocket/go-websocket/define"
)

// WebSocket opcodes of the frames the server writes.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// A frame is a complete server-to-client WebSocket frame (header and
// unmasked payload). Frames are immutable once built, so one broadcast frame
// is shared by every recipient's queue and written without copying.
type frame []byte

func appendFrameHeader(dst []byte, opcode byte, n int) []byte {
	dst = append(dst, 0x80|opcode)
	switch {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return dst
}

func headerLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}

// newFrame wraps payload in a frame of the opcode.
func newFrame(opcode byte, payload []byte) frame {
	b := make([]byte, 0, headerLen(len(payload))+len(payload))
	b = appendFrameHeader(b, opcode, len(payload))
	return append(b, payload...)
}

// closeFrame builds a close frame with a status code and a short reason.
func closeFrame(code int, reason string) frame {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	return newFrame(opClose, append(p, reason...))
}

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
	b = appendString(b, messageID)
	b = append(b, `,"sendUserId":`...)
	b = appendString(b, m.SendUserID)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(m.Code), 10)
	b = append(b, `,"msg":`...)
	b = appendString(b, m.Msg)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	// Put the header right before the payload inside the reserved 10 bytes.
	payload := len(b) - 10
	h := headerLen(payload)
	appendFrameHeader(b[10-h:10-h], opText, payload)
	return frame(b[10-h:])
}

// envelopeFrame encodes {"code":0,"msg":...,"data":{"clientId":...}} and the
// error envelope of a refused connect.
func envelopeFrame(code int, msg string, clientID string) frame {
	b := make([]byte, 0, 96+len(msg)+len(clientID))
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"msg":`...)
	b = appendString(b, msg)
	if clientID != "" {
		b = append(b, `,"data":{"clientId":`...)
		b = appendString(b, clientID)
		b = append(b, `}}`...)
	} else {
		b = append(b, `,"data":null}`...)
	}
	return newFrame(opText, b)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD so a
// text frame is always valid UTF-8, as RFC 6455 requires.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
