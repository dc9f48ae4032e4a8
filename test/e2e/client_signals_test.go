package e2e

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gochat/chat/internal/protocol"
)

// PROTOCOL.md section 5 and docs/PROTOCOL.md "Client": signals end the
// client at once and cleanly, whatever it is doing.

// After a disconnection with piped input still open, the client drains its
// stdin; SIGINT and SIGTERM still end it at once (status 1: the session was
// lost).
func TestClientSignalEndsDrain(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			c, rc := clientOnFake(t, "alice")
			rc.NC.Close()
			c.out.waitLine(t, "disconnected: connection to server lost", timeout)
			c.send(t, "list") // stdin is still read and discarded
			c.requireRunning(t)
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			c.expectExit(t, 1, timeout) // stdin is still open
			c.out.expectEnd(t, timeout)
		})
	}
}

// SIGHUP (the terminal closed) and SIGQUIT in the middle of a download end
// the session as SIGINT does: a disconnect is sent, the temporary file is
// removed and named on stderr, the client prints quitting and exits 0.
func TestClientSignalMidDownloadCleansUp(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			c, rc := clientOnFake(t, "alice")
			head := "1 bob big.bin "
			rc.Write([]byte("forward_file " + itoa(len(head)+1<<20) + " " + head + strings.Repeat("x", 1000)))
			waitForPartFile(t, c.home)
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			rc.Expect(protocol.Disconnect, "alice")
			rc.NC.Close()
			c.out.waitLine(t, "quitting", timeout)
			c.expectExit(t, 0, timeout)
			c.out.expectEnd(t, timeout)
			c.errs.skipTo(t, `client: abandoned "big.bin" from bob after 1000 of 1048576 bytes; nothing saved`, timeout)
			c.expectHomeFiles(t)
		})
	}
}

// quit in the middle of a download says on stderr which file was
// abandoned.
func TestClientQuitMidDownloadNamesFile(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	head := "1 bob big.bin "
	rc.Write([]byte("forward_file " + itoa(len(head)+1<<20) + " " + head + strings.Repeat("x", 1000)))
	waitForPartFile(t, c.home)
	c.send(t, "quit")
	rc.Expect(protocol.Disconnect, "alice")
	rc.NC.Close()
	c.out.waitLine(t, "quitting", timeout)
	c.expectExit(t, 0, timeout)
	c.errs.skipTo(t, `client: abandoned "big.bin" from bob after 1000 of 1048576 bytes; nothing saved`, timeout)
	c.expectHomeFiles(t)
}

// waitForPartFile waits until dir holds a temporary download file
// (.chat-recv-*.part), watching the folder with inotify.
func waitForPartFile(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatalf("inotify watch %s: %v", dir, err)
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		// Look after the watch is set, so that no creation is missed.
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".chat-recv-") && strings.HasSuffix(e.Name(), ".part") {
				return
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no temporary download file in %s after %v", dir, timeout)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatalf("poll: %v", err)
		}
		for { // empty the queue of events; the folder is read again above
			if _, err := unix.Read(fd, buf); err != nil {
				break
			}
		}
	}
}
