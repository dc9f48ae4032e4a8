package client

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// setDirect turns O_DIRECT on or off for f's later writes.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if cerr := rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			ferr = err
			return
		}
		if on {
			flags |= unix.O_DIRECT
		} else {
			flags &^= unix.O_DIRECT
		}
		_, ferr = unix.FcntlInt(fd, unix.F_SETFL, flags)
	}); cerr != nil {
		return cerr
	}
	return ferr
}

// mapBlock returns n bytes of memory aligned to the page, as O_DIRECT
// wants its buffers, outside the Go heap. The client keeps its buffers
// for its life (at most saveBudget bytes), so nothing unmaps them.
func mapBlock(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
}

// writeFile writes bufs to f in order (writev(2)), all of them unless an
// error stops it. A first write that O_DIRECT refuses (EINVAL: the device
// wants a larger alignment than the buffers') is errDirectRefused, having
// written nothing.
func writeFile(f *os.File, bufs [][]byte) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	bufs = append([][]byte(nil), bufs...) // trimmed below as they are written: the caller's stay whole
	total := 0
	var werr error
	if cerr := rc.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			n, err := unix.Writev(int(fd), bufs)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				werr = err
				if total == 0 && err == unix.EINVAL {
					werr = errDirectRefused
				}
				return true
			}
			if n == 0 {
				werr = errors.New("write wrote nothing")
				return true
			}
			total += n
			for n > 0 { // drop what was written
				k := min(n, len(bufs[0]))
				bufs[0] = bufs[0][k:]
				n -= k
				if len(bufs[0]) == 0 {
					bufs = bufs[1:]
				}
			}
		}
		return true
	}); cerr != nil {
		return total, cerr
	}
	return total, werr
}
