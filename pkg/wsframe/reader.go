// Package wsframe is an RFC 6455 frame codec with no knowledge of what the
// frames carry: a reader of client frames over any io.Reader, the builders
// of server frames, close-code rules and a JSON string encoder for the text
// frames.
//
// The reader reads straight from its source into a few bytes of header
// state: a data payload the caller does not ask for is skipped without
// being buffered, and a reader parked between frames holds no buffer. A
// connection that mostly idles therefore costs little more than the
// goroutine that reads it.
package wsframe

import (
	"encoding/binary"
	"errors"
	"io"
)

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Bits of a frame's first byte.
const (
	FinBit  byte = 0x80
	RSV1Bit byte = 0x40 // permessage-deflate marks a compressed message with it
	RSV2Bit byte = 0x20
	RSV3Bit byte = 0x10
)

// MaxControlPayload is the largest payload of a control frame.
const MaxControlPayload = 125

// Error is a reason to fail the connection, with the close code the peer
// should get: 1002 (protocol error), 1007 (invalid UTF-8) or 1009 (too big).
type Error struct {
	Code int
	Text string // what was wrong
}

func (e *Error) Error() string { return "websocket: " + e.Text }

// Is makes errors.Is(err, ErrProtocol) (and the other classes) true for
// every error of that close code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Text == "" && t.Code == e.Code
}

// The classes of errors, for errors.Is.
var (
	ErrProtocol    = &Error{Code: CloseProtocolError}
	ErrInvalidUTF8 = &Error{Code: CloseInvalidPayload}
	ErrTooBig      = &Error{Code: CloseMessageTooBig}
)

// CloseCodeOf is the close code an error from the reader calls for (0 when
// it is not a protocol verdict, e.g. an I/O error or a timeout).
func CloseCodeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// The individual verdicts (each matches its class with errors.Is).
var (
	errUnmasked        = &Error{CloseProtocolError, "client frame not masked"}
	errRSV             = &Error{CloseProtocolError, "reserved bit set without a negotiated extension"}
	errRSV1Placement   = &Error{CloseProtocolError, "RSV1 set on a control or continuation frame"}
	errOpcode          = &Error{CloseProtocolError, "reserved opcode"}
	errControlFrag     = &Error{CloseProtocolError, "fragmented control frame"}
	errControlLen      = &Error{CloseProtocolError, "control frame payload over 125 bytes"}
	errContinuation    = &Error{CloseProtocolError, "continuation frame without a message to continue"}
	errUnfinished      = &Error{CloseProtocolError, "new message before the previous one was finished"}
	errLength63        = &Error{CloseProtocolError, "payload length with the most significant bit set"}
	errNonMinimal      = &Error{CloseProtocolError, "payload length not in its shortest form"}
	errTooBig          = &Error{CloseMessageTooBig, "message over the read limit"}
	errInvalidUTF8Text = &Error{CloseInvalidPayload, "text message is not valid UTF-8"}
)

// Frame is the header of one frame; for a control frame it also carries the
// unmasked payload.
type Frame struct {
	Op   byte  // opcode of this frame (OpContinuation for later fragments)
	Fin  bool  // last frame of its message
	RSV1 bool  // set on the first frame of a compressed message
	Len  int64 // payload length
	// Payload is the unmasked payload of a control frame (nil for data
	// frames: read those with Read or ReadPayload).
	Payload []byte
	// Frame fits in registers (with the error Next returns it with), which
	// keeps the reader's stack frames small: see Next.
}

// MessageType is OpText or OpBinary: the type of the data message the last
// data frame belongs to (continuation frames included).
func (r *Reader) MessageType() byte { return r.msgOp }

// IsControl reports whether the frame is a control frame.
func (f *Frame) IsControl() bool { return f.Op&0x8 != 0 }

// Reader reads client frames (masked, as RFC 6455 requires of clients) from
// a source. It holds no buffer: headers are read a few bytes at a time and
// payloads go straight to the caller or are skipped.
type Reader struct {
	// Limit is the largest message in bytes, summed over its fragments; 0
	// means no limit. A frame that would exceed it fails with ErrTooBig as
	// soon as its header is read, before its payload.
	Limit int64

	src io.Reader
	err error // sticky verdict
	// remaining is the unread payload of the current data frame.
	remaining int64
	msgLen    int64 // bytes of the message in progress so far

	hdr [14]byte
	key [4]byte
	// utf8 validates a text message as its payload is read.
	utf8 utf8Checker
	// hdrRead is how much of hdr the current frame has filled (2 once the
	// first two bytes are in) and hdrDone that the header was parsed in
	// full; they let Drain resynchronise after an error.
	hdrRead uint8
	hdrDone bool
	// lost: a header Drain cannot follow (a length of 2^63 or more).
	lost   bool
	keyPos uint8
	msgOp  byte // OpText or OpBinary of the message in progress
	// inMessage: a data frame without FIN was read.
	inMessage bool
	// skipped marks a text message of which some payload was skipped (it
	// is not validated).
	skipped bool

	// Compression allows RSV1 on the first frame of a data message (the
	// peer negotiated permessage-deflate, RFC 7692). Off, RSV1 is a
	// protocol error, as RSV2 and RSV3 always are.
	Compression bool
}

// NewReader returns a reader of the client frames src carries.
func NewReader(src io.Reader) *Reader { return &Reader{src: src} }

// Next skips whatever the caller did not read of the previous data frame
// and reads the next frame's header. A control frame comes with its payload.
// For a data frame, the caller may read the payload with Read or
// ReadPayload before the next call; what it does not read is skipped
// without being buffered. Every RFC 6455 violation is an *Error; an error
// is final.
func (r *Reader) Next() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	if r.remaining > 0 {
		if err := r.skipRest(); err != nil {
			return Frame{}, r.fail(err)
		}
	}
	// The first bytes of the header are read here rather than in a callee:
	// an idle connection waits in this call, and every frame below it on
	// the goroutine's stack counts towards the stack size it keeps.
	r.hdrRead, r.hdrDone = 0, false
	n, err := r.src.Read(r.hdr[:2])
	r.hdrRead = uint8(n)
	f, err := r.next(err)
	if err != nil {
		return Frame{}, r.fail(err)
	}
	return f, nil
}

// skipRest skips what the caller did not read of the current data frame.
func (r *Reader) skipRest() error {
	if r.msgOp == OpText {
		r.skipped = true
	}
	return r.skip(r.remaining)
}

func (r *Reader) fail(err error) error {
	if err == io.EOF && r.hdrRead > 0 {
		err = io.ErrUnexpectedEOF
	}
	r.err = err
	return err
}

// next parses the frame whose first header bytes Next read (readErr is
// the error of that read).
func (r *Reader) next(readErr error) (Frame, error) {
	if r.hdrRead < 2 {
		if readErr == nil {
			readErr = r.fill(int(r.hdrRead), 2)
		}
		if r.hdrRead < 2 {
			return Frame{}, readErr
		}
	}
	b0, b1 := r.hdr[0], r.hdr[1]
	f := Frame{Op: b0 & 0x0F, Fin: b0&FinBit != 0, RSV1: b0&RSV1Bit != 0}
	// Everything the first two bytes can prove wrong is checked before more
	// is read.
	if b0&(RSV2Bit|RSV3Bit) != 0 || (f.RSV1 && !r.Compression) {
		return f, errRSV
	}
	if b1&0x80 == 0 {
		return f, errUnmasked
	}
	n := int64(b1 & 0x7F)
	switch {
	case f.IsControl():
		if f.Op > OpPong {
			return f, errOpcode
		}
		if !f.Fin {
			return f, errControlFrag
		}
		if n > MaxControlPayload {
			return f, errControlLen
		}
		if f.RSV1 {
			return f, errRSV1Placement
		}
	case f.Op == OpContinuation:
		if !r.inMessage {
			return f, errContinuation
		}
		if f.RSV1 {
			return f, errRSV1Placement
		}
	case f.Op == OpText || f.Op == OpBinary:
		if r.inMessage {
			return f, errUnfinished
		}
	default:
		return f, errOpcode
	}

	ext := 0
	switch n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if err := r.fill(2, 2+ext); err != nil {
		return f, err
	}
	switch ext {
	case 2:
		n = int64(binary.BigEndian.Uint16(r.hdr[2:4]))
		if n < 126 {
			return f, errNonMinimal
		}
	case 8:
		u := binary.BigEndian.Uint64(r.hdr[2:10])
		if u>>63 != 0 {
			return f, errLength63
		}
		n = int64(u)
		if n <= 0xFFFF {
			return f, errNonMinimal
		}
	}
	if err := r.fill(2+ext, 2+ext+4); err != nil {
		return f, err
	}
	copy(r.key[:], r.hdr[2+ext:2+ext+4])
	r.keyPos = 0
	r.hdrDone = true
	f.Len = n

	if f.IsControl() {
		if n > 0 {
			f.Payload = make([]byte, n)
			if err := r.full(f.Payload); err != nil {
				return f, err
			}
			r.keyPos = mask(r.key, 0, f.Payload)
		}
		return f, nil
	}

	if f.Op != OpContinuation {
		r.msgOp, r.msgLen = f.Op, 0
		// A compressed message is checked once inflated, by the caller.
		r.utf8, r.skipped = utf8Checker{}, f.RSV1
	}
	r.msgLen += n
	if r.Limit > 0 && r.msgLen > r.Limit {
		r.remaining = n
		return f, errTooBig
	}
	r.inMessage = !f.Fin
	r.remaining = n
	if n == 0 && f.Fin {
		if err := r.endText(); err != nil {
			return f, err
		}
	}
	return f, nil
}

// Read reads the current data frame's payload, unmasked; io.EOF at its end.
// The payload of a text message is checked for valid UTF-8 as it is read
// (over fragment boundaries; the message's end is checked with its last
// frame).
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.src.Read(p)
	if n > 0 {
		r.keyPos = mask(r.key, r.keyPos, p[:n])
		r.remaining -= int64(n)
		if r.msgOp == OpText && !r.skipped {
			if !r.utf8.write(p[:n]) {
				return n, r.fail(errInvalidUTF8Text)
			}
			if r.remaining == 0 && !r.inMessage {
				if err := r.endText(); err != nil {
					return n, r.fail(err)
				}
			}
		}
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if r.remaining > 0 {
			return n, r.fail(err)
		}
	}
	return n, nil
}

// ReadPayload appends the rest of the current data frame's payload to dst.
// The frame's length was checked against Limit when its header was read;
// dst grows with what arrives, not with what the header announced.
func (r *Reader) ReadPayload(dst []byte) ([]byte, error) {
	if r.err != nil {
		return dst, r.err
	}
	if need := r.remaining; need <= 64<<10 && int64(cap(dst)-len(dst)) < need {
		dst = append(dst, make([]byte, need)...)[:len(dst)]
	}
	for r.remaining > 0 {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		room := dst[len(dst):cap(dst)]
		if int64(len(room)) > r.remaining {
			room = room[:r.remaining]
		}
		n, err := r.Read(room)
		dst = dst[:len(dst)+n]
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// endText checks that a fully read text message ended on a rune boundary.
func (r *Reader) endText() error {
	if r.msgOp == OpText && !r.skipped && !r.utf8.complete() {
		return errInvalidUTF8Text
	}
	return nil
}

// ErrFrameTooLong is DiscardMessage's answer to a message longer than its
// cap.
var ErrFrameTooLong = errors.New("websocket: message longer than the discard cap")

// DiscardMessage reads and discards the rest of the message a verdict
// stopped in, when it can be followed: the rest of the refused frame and,
// when that was a data frame that did not end its message, the message's
// further frames up to its last (control frames between them included; a
// close frame from the peer ends it too). At most max payload bytes are
// read; a longer message returns ErrFrameTooLong. Reading what the client
// already sent before answering keeps the answer from overtaking it: a
// proxy that sees the server end the connection while client bytes are
// still in flight resets the client's side, and the client never sees the
// close frame.
func (r *Reader) DiscardMessage(max int64) error {
	if r.hdrRead < 2 {
		return nil
	}
	for i := 0; i < 1<<20; i++ {
		if err := r.finishHeader(); err != nil {
			return err
		}
		if r.lost || r.remaining > max {
			return ErrFrameTooLong
		}
		max -= r.remaining
		if err := r.skip(r.remaining); err != nil {
			return err
		}
		b0 := r.hdr[0]
		op := b0 & 0x0F
		switch {
		case op == OpClose:
			return nil // the peer is closing
		case op&0x8 != 0:
			if i == 0 {
				return nil // a refused control frame is all there is
			}
		case b0&FinBit != 0 || (i > 0 && op != OpContinuation):
			return nil // the message ended
		}
		r.hdrRead, r.hdrDone = 0, false
		if err := r.fill(0, 2); err != nil {
			return err
		}
	}
	return ErrFrameTooLong
}

// Drain reads on after an error or after the server's close frame, until the
// peer's close frame (nil), EOF or a read error (returned; a deadline on
// the source bounds it). Frames are skipped whole without being checked, so
// that the peer's answer to the close is found even after a frame the
// server refused, and the socket is not closed with unread bytes (a kernel
// answers that with a reset, which a proxy passes on instead of the close).
// When the stream cannot be followed any more, everything is discarded.
func (r *Reader) Drain() error {
	// Finish the frame the error stopped in, when its header is known.
	if r.hdrRead >= 2 {
		if err := r.finishHeader(); err != nil {
			return err
		}
		if r.lost {
			return r.discardAll()
		}
		if err := r.skip(r.remaining); err != nil {
			return err
		}
		if r.hdr[0]&0x0F == OpClose {
			return nil // that frame was the peer's close
		}
	}
	for {
		r.hdrRead, r.hdrDone = 0, false
		if err := r.fill(0, 2); err != nil {
			return err
		}
		if err := r.finishHeader(); err != nil {
			return err
		}
		if r.lost {
			return r.discardAll()
		}
		if err := r.skip(r.remaining); err != nil {
			return err
		}
		if r.hdr[0]&0x0F == OpClose {
			return nil // the peer's close; its payload does not matter any more
		}
	}
}

// finishHeader reads the rest of a header whose first two bytes are in and
// sets remaining to its payload length; a length that cannot be followed
// (2^63 and up) sets lost instead.
func (r *Reader) finishHeader() error {
	if r.hdrDone {
		// next() parsed it: remaining is set (a data frame over the limit),
		// or it is a control frame whose payload was read.
		return nil
	}
	b1 := r.hdr[1]
	n := int64(b1 & 0x7F)
	ext := 0
	switch n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	maskLen := 0
	if b1&0x80 != 0 {
		maskLen = 4
	}
	if err := r.fill(int(r.hdrRead), 2+ext+maskLen); err != nil {
		return err
	}
	switch ext {
	case 2:
		n = int64(binary.BigEndian.Uint16(r.hdr[2:4]))
	case 8:
		u := binary.BigEndian.Uint64(r.hdr[2:10])
		if u>>63 != 0 {
			r.lost = true
			return nil
		}
		n = int64(u)
	}
	r.remaining = n
	r.hdrDone = true
	return nil
}

// discardAll reads to the end of the stream (or the source's deadline).
func (r *Reader) discardAll() error {
	_, err := io.Copy(io.Discard, r.src)
	if err == nil {
		err = io.EOF
	}
	return err
}

// fill reads hdr[from:to].
func (r *Reader) fill(from, to int) error {
	for from < to {
		n, err := r.src.Read(r.hdr[from:to])
		from += n
		r.hdrRead = uint8(from)
		if from == to {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *Reader) full(p []byte) error {
	for i := 0; i < len(p); {
		n, err := r.src.Read(p[i:])
		i += n
		if i == len(p) {
			return nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// skip discards n payload bytes; io.Discard reads them through a shared,
// pooled buffer, so nothing is held per connection.
func (r *Reader) skip(n int64) error {
	got, err := io.CopyN(io.Discard, r.src, n)
	r.remaining -= got
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// mask XORs b with the masking key from position pos; it returns the next
// position.
func mask(key [4]byte, pos uint8, b []byte) uint8 {
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}
