package wstest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Opcodes of RFC 6455.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// Raw is a WebSocket spoken by hand over a TCP connection, for frames a
// conforming client library would never send and for reading exactly what
// the server wrote.
type Raw struct {
	NC net.Conn
	BR *bufio.Reader
}

// RawUpgrade performs the opening handshake on a new TCP connection to
// addr (host:port) for target (path and query, e.g.
// "/api/websocket/ws?systemId=s"). Anything but 101 is an error. The
// connection is closed when the test ends.
func RawUpgrade(t testing.TB, addr, target string) (*Raw, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET " + target + " HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\n\r\n"
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("upgrade answered HTTP %d", resp.StatusCode)
	}
	_ = nc.SetDeadline(time.Time{})
	t.Cleanup(func() { _ = nc.Close() })
	return &Raw{NC: nc, BR: br}, nil
}

// ReadFrame reads one server frame (servers never mask; a masked frame is
// an error, and so is one over 1 MiB).
func (r *Raw) ReadFrame(deadline time.Time) (op byte, payload []byte, err error) {
	_ = r.NC.SetReadDeadline(deadline)
	var h [2]byte
	if _, err = io.ReadFull(r.BR, h[:]); err != nil {
		return 0, nil, err
	}
	op = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r.BR, b[:]); err != nil {
			return op, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r.BR, b[:]); err != nil {
			return op, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 {
		return op, nil, errors.New("server sent a masked frame")
	}
	if n > 1<<20 {
		return op, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r.BR, payload)
	return op, payload, err
}

// ReadWelcome reads the first frame and requires the welcome.
func (r *Raw) ReadWelcome() (Welcome, error) {
	op, p, err := r.ReadFrame(time.Now().Add(5 * time.Second))
	if err != nil {
		return Welcome{}, err
	}
	if op != OpText {
		return Welcome{}, fmt.Errorf("first frame op %d %q is not the welcome", op, p)
	}
	return ParseWelcome(p)
}

// WelcomeID reads the welcome and returns its clientId.
func (r *Raw) WelcomeID() (string, error) {
	w, err := r.ReadWelcome()
	return w.ClientID, err
}

// WaitEnd reads until the server closes: it returns the close code of the
// server's first close frame (NoCloseFrame when none came, 1005 for an
// empty one), whether the TCP connection ended before d passed, and how many
// frames followed the close frame (RFC 6455 5.5.1: nothing should).
func (r *Raw) WaitEnd(d time.Duration) (closeCode int, ended bool, after int, err error) {
	deadline := time.Now().Add(d)
	closeCode = NoCloseFrame
	for i := 0; i < 100000; i++ {
		op, p, err := r.ReadFrame(deadline)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return closeCode, false, after, err
			}
			return closeCode, true, after, err
		}
		switch {
		case closeCode != NoCloseFrame:
			after++
		case op == OpClose:
			closeCode = 1005
			if len(p) >= 2 {
				closeCode = int(binary.BigEndian.Uint16(p))
			}
		}
	}
	return closeCode, false, after, errors.New("too many frames")
}

// Write sends bytes as they are (frames built with ClientFrame).
func (r *Raw) Write(b []byte) error {
	_ = r.NC.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.NC.Write(b)
	return err
}

// ClientFrame builds one frame: first is the first byte (FIN, RSV bits and
// opcode); mask adds a random masking key, as a client must.
func ClientFrame(first byte, payload []byte, mask bool) []byte {
	b := []byte{first}
	mbit := byte(0)
	if mask {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, mbit|byte(n))
	case n <= 0xffff:
		b = append(b, mbit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !mask {
		return append(b, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}
