package main

import (
	"bytes"
	"strconv"
)

// The benchmark payload is the `data` of every pushed message, a JSON object
// with one string:
//
//	{"wsb":"<run id>.<seq>.<send time, unix ns><padding x...>"}
//
// One string keeps the overhead small (a 64-byte payload fits with a 19-digit
// timestamp) and survives a server that re-encodes JSON (numbers as float64,
// keys reordered, whitespace added). The padding makes the object exactly the
// requested payload size. The key is unlikely to appear anywhere else in a
// frame.

const keyRun = `"wsb":`

// payloadBase is the length of a payload without padding.
func payloadBase(run string, seq uint64, t int64) int {
	return len(`{"wsb":".."}`) + len(run) + len(strconv.FormatUint(seq, 10)) + len(strconv.FormatInt(t, 10))
}

// appendPayload appends the payload JSON to dst. The result is exactly size
// bytes long when size is at least the unpadded length, else the unpadded
// length. run must be [0-9a-z] (the tool uses hex run ids).
func appendPayload(dst []byte, run string, seq uint64, t int64, size int) []byte {
	pad := size - payloadBase(run, seq, t)
	dst = append(dst, `{"wsb":"`...)
	dst = append(dst, run...)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, t, 10)
	for ; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	dst = append(dst, `"}`...)
	return dst
}

// payloadInfo is what a receiver extracts from a frame.
type payloadInfo struct {
	Run  []byte // aliases the frame
	Seq  uint64
	Sent int64 // unix nanos
}

// parsePayload finds the benchmark payload anywhere in frame (a whole pushed
// frame or just its data). ok is false when the frame carries no (valid)
// benchmark payload.
func parsePayload(frame []byte) (p payloadInfo, ok bool) {
	v, ok := stringField(frame, keyRun)
	if !ok {
		return p, false
	}
	run, rest, ok := bytes.Cut(v, []byte("."))
	if !ok || len(run) == 0 {
		return p, false
	}
	seqS, rest, ok := bytes.Cut(rest, []byte("."))
	if !ok {
		return p, false
	}
	seq, ok := parseUintBytes(seqS)
	if !ok {
		return p, false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	for _, c := range rest[n:] {
		if c != 'x' {
			return p, false
		}
	}
	t, ok := parseUintBytes(rest[:n])
	if !ok || t > 1<<62 {
		return p, false
	}
	return payloadInfo{Run: run, Seq: seq, Sent: int64(t)}, true
}

// stringField returns the contents of the JSON string that follows key
// (`"name":`), allowing whitespace after the colon. Escapes are not decoded;
// a value containing a backslash is rejected.
func stringField(b []byte, key string) ([]byte, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil, false
	}
	b = skipSpace(b[i+len(key):])
	if len(b) == 0 || b[0] != '"' {
		return nil, false
	}
	b = b[1:]
	end := bytes.IndexByte(b, '"')
	if end < 0 || bytes.IndexByte(b[:end], '\\') >= 0 {
		return nil, false
	}
	return b[:end], true
}

// frameCode returns the integer after the first `"code":` in frame (the
// top-level code of a go-websocket push, which comes before data).
func frameCode(b []byte) (int, bool) {
	i := bytes.Index(b, []byte(`"code":`))
	if i < 0 {
		return 0, false
	}
	b = skipSpace(b[i+len(`"code":`):])
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	n := 0
	digits := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		if digits > 9 {
			return 0, false
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

func parseUintBytes(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// isMembershipEvent reports whether a go-websocket frame is a 1001/1002
// group membership event (never counted as a delivery).
func isMembershipEvent(frame []byte) bool {
	c, ok := frameCode(frame)
	return ok && (c == 1001 || c == 1002)
}
