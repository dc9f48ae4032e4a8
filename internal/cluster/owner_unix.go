//go:build unix

package cluster

import (
	"os"
	"syscall"
)

// fileOwner returns the user id that owns fi's file.
func fileOwner(fi os.FileInfo) (uid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
