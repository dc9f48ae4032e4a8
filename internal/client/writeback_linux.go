package client

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeback starts writing n bytes at off of f to the disk
// (sync_file_range(2)) and, if wait, waits until they are written. It
// leaves the final sync short: the data is on its way, or there, already.
// It neither syncs metadata nor flushes the disk's cache, so a saver still
// syncs the file at its end; an error shows there too, so it is ignored
// here.
func writeback(f *os.File, off, n int64, wait bool) {
	flags := unix.SYNC_FILE_RANGE_WRITE
	if wait {
		flags |= unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { unix.SyncFileRange(int(fd), off, n, flags) })
}
