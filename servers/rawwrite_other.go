//go:build !(darwin || linux || openbsd)

package servers

import (
	"net"
	"syscall"
)

const maxIovecs = 1024

// rawConn: no non-blocking writes on this system; every write goes through
// the writer's loop (net.Buffers, blocking with a deadline).
func rawConn(net.Conn) syscall.RawConn { return nil }

func (w *writer) tryWrite([][]byte) (int, error) { return 0, nil }
