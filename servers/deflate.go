package servers

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/go-websocket/go-websocket/pkg/wsframe"
)

// permessage-deflate (RFC 7692), when websocket.compression is on and the
// client offers it: negotiated with no_context_takeover both ways (each
// message is compressed on its own), so a broadcast is compressed once and
// the same bytes go to every recipient that negotiated it. Frames that
// carry a per-client sequence number (sessions) are sent uncompressed,
// which the extension allows message by message.

// offersDeflate reports whether a handshake offers permessage-deflate (the
// upgrader accepts the offer then, whatever its parameters).
func offersDeflate(h http.Header) bool {
	for _, line := range h.Values("Sec-WebSocket-Extensions") {
		for _, ext := range strings.Split(line, ",") {
			name, _, _ := strings.Cut(ext, ";")
			if strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
				return true
			}
		}
	}
	return false
}

var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// deflateTail ends every compressed message; RFC 7692 drops it on the wire.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// deflateFrame returns text frame f as a compressed message (RSV1 set).
func deflateFrame(f frame) frame {
	payload := f[headerSize(f):]
	var buf bytes.Buffer
	buf.Grow(len(payload)/2 + 16)
	fw := flateWriters.Get().(*flate.Writer)
	fw.Reset(&buf)
	_, _ = fw.Write(payload)
	_ = fw.Flush()
	flateWriters.Put(fw)
	body := bytes.TrimSuffix(buf.Bytes(), deflateTail)
	out := wsframe.AppendHeader(make([]byte, 0, 10+len(body)), wsframe.FinBit|wsframe.RSV1Bit|opText, len(body))
	return append(out, body...)
}

// errInflatedTooBig: a compressed client message inflates past the read
// limit.
var errInflatedTooBig = errors.New("compressed message inflates past the read limit")

// inflate decompresses a client's compressed message, at most limit bytes.
func inflate(p []byte, limit int64) ([]byte, error) {
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)))
	defer fr.Close()
	out, err := io.ReadAll(io.LimitReader(fr, limit+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, errInflatedTooBig
	}
	return out, nil
}

// compressed returns what to queue for c: f itself, or its compressed form
// (made by z, once per broadcast) when c negotiated compression and f is a
// data frame without a sequence number.
func (c *Client) compressed(f frame, z *frame) frame {
	if !c.w.deflate || c.hub.cfg.SessionTTL > 0 || !isData(f) {
		return f
	}
	if *z == nil {
		*z = deflateFrame(f)
	}
	return *z
}
