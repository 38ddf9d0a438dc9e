//go:build darwin || linux || openbsd

package servers

import (
	"net"
	"syscall"
	"unsafe"

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

// tryWrite makes one non-blocking write (one frame) or writev (several)
// attempt; it never waits for the socket to become writable. A full socket
// buffer is not an error: n is what the kernel took.
func (w *writer) tryWrite(frames []frame) (int, error) {
	var n int
	var werr error
	// A frame is a []byte: the slice of frames is a slice of byte slices.
	bufs := unsafe.Slice((*[]byte)(unsafe.Pointer(unsafe.SliceData(frames))), len(frames))
	err := w.rc.Write(func(fd uintptr) bool {
		for {
			if len(bufs) == 1 {
				n, werr = unix.Write(int(fd), bufs[0])
			} else {
				n, werr = unix.Writev(int(fd), bufs)
			}
			if werr != unix.EINTR {
				return true
			}
		}
	})
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
