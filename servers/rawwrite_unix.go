//go:build darwin || linux || openbsd

package servers

import (
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxIovecs bounds the frames of one writev (IOV_MAX is 1024 on these systems).
const maxIovecs = 1024

// rawConn returns the socket's raw connection for non-blocking writes on the
// caller's goroutine, or nil when nc has none.
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// rawWrite is one non-blocking write attempt; pooled with its callback so
// that a write allocates nothing (a closure over the results would).
type rawWrite struct {
	bufs [][]byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

var rawWrites = sync.Pool{New: func() any {
	op := &rawWrite{}
	op.fn = op.do
	return op
}}

func (op *rawWrite) do(fd uintptr) bool {
	for {
		if len(op.bufs) == 1 {
			op.n, op.err = unix.Write(int(fd), op.bufs[0])
		} else {
			op.n, op.err = unix.Writev(int(fd), op.bufs)
		}
		if op.err != unix.EINTR {
			return true // one attempt; never wait for writability here
		}
	}
}

// tryWrite makes one non-blocking write (one frame) or writev (several)
// attempt; it never waits for the socket to become writable. A full socket
// buffer is not an error: n is what the kernel took.
func (w *writer) tryWrite(bufs [][]byte) (int, error) {
	op := rawWrites.Get().(*rawWrite)
	op.bufs = bufs
	err := w.rc.Write(op.fn)
	n, werr := op.n, op.err
	op.bufs, op.n, op.err = nil, 0, nil
	rawWrites.Put(op)
	switch {
	case err != nil:
		return 0, err
	case werr == unix.EAGAIN:
		return 0, nil
	case werr != nil:
		return 0, werr
	case n < 0:
		return 0, nil
	}
	return n, nil
}
