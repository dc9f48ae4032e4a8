//go:build unix

package server

import (
	"net"
	"syscall"
)

// waitReadable blocks until nc has input (or an error, EOF or a deadline)
// without reading it, so that an idle connection can wait holding no read
// buffer. Connections that give no access to their descriptor (TLS)
// return at once.
func waitReadable(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}
