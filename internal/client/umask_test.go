//go:build unix

package client

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// A received file is created as other programs create theirs, 0666 less
// the umask, whatever the umask (issue 23 item 10: it was always chmod
// to 0644). The umask is the process's: no test of this package runs in
// parallel.
func TestReceivedFileHonoursUmask(t *testing.T) {
	for _, tc := range []struct{ umask, want os.FileMode }{{0o022, 0o644}, {0o077, 0o600}, {0o002, 0o664}} {
		forEachDelivery(t, func(t *testing.T, d delivery) {
			old := syscall.Umask(int(tc.umask))
			defer syscall.Umask(old)
			addr := d.serve(t, func(nc net.Conn, r *protocol.Reader) {
				sendThenAwaitQuit(t, nc, r, fileFrames(d.chunked, "notes.txt", []byte("hello")))
			})
			s := d.start(t, addr)
			s.quitAfter(t, "file: bob: notes.txt\n")
			st, err := os.Stat(filepath.Join(s.dir, "me_notes.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != tc.want {
				t.Errorf("umask %#o: saved with mode %v, want %v", tc.umask, got, tc.want)
			}
		})
	}
}
