//go:build unix

package dispatch

import (
	"net"
	"syscall"
)

// peerClosed reports whether conn's peer closed it (or sent something unasked, or it failed): a
// look at its receive queue that does not wait.
func peerClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = err != syscall.EAGAIN && err != syscall.EWOULDBLOCK || n > 0
		return true
	})
	return closed || err != nil
}
