package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// HeaderLen is the length of a server frame's header (no masking key) for
// a payload of n bytes.
func HeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}

// AppendHeader appends the header of an unmasked frame (a server frame):
// first is the first byte (FinBit | opcode, plus RSV1Bit for a compressed
// message), n the payload length.
func AppendHeader(dst []byte, first byte, n int) []byte {
	dst = append(dst, first)
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

// AppendFrame appends a complete unfragmented frame of the opcode.
func AppendFrame(dst []byte, op byte, payload []byte) []byte {
	dst = AppendHeader(dst, FinBit|op, len(payload))
	return append(dst, payload...)
}

// New returns a complete unfragmented frame of the opcode, allocated once.
func New(op byte, payload []byte) []byte {
	return AppendFrame(make([]byte, 0, HeaderLen(len(payload))+len(payload)), op, payload)
}

// Text returns a text frame; payload must be valid UTF-8.
func Text(payload []byte) []byte { return New(OpText, payload) }

// Ping returns a ping frame (payload at most 125 bytes).
func Ping(payload []byte) []byte { return New(OpPing, payload) }

// Pong returns a pong frame (payload at most 125 bytes).
func Pong(payload []byte) []byte { return New(OpPong, payload) }

// MaxCloseReason is the longest close reason that fits a control frame.
const MaxCloseReason = MaxControlPayload - 2

// Close returns a close frame with a status code and a reason, cut to
// MaxCloseReason bytes on a rune boundary (the reason must stay UTF-8).
// Code 0 makes a close frame without a body.
func Close(code int, reason string) []byte {
	if code == 0 {
		return New(OpClose, nil)
	}
	if len(reason) > MaxCloseReason {
		cut := MaxCloseReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	p := make([]byte, 0, 2+len(reason))
	p = binary.BigEndian.AppendUint16(p, uint16(code))
	return New(OpClose, append(p, reason...))
}
