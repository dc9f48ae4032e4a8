package client

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// fileFrames returns the frames that deliver content from bob as name: one
// forward_file, or file_begin, file_chunk frames of at most
// protocol.MaxChunkData bytes and file_end.
func fileFrames(chunked bool, name string, content []byte) []byte {
	if !chunked {
		b := protocol.AppendFileHead(nil, protocol.ForwardFile, []string{"bob"}, name, int64(len(content)))
		return append(b, content...)
	}
	b := protocol.AppendFileBegin(nil, 1, "bob", name, int64(len(content)))
	for rest := content; len(rest) > 0; {
		k := min(len(rest), protocol.MaxChunkData)
		b = protocol.ChunkHeader(b, 1, k)
		b = append(b, rest[:k]...)
		rest = rest[k:]
	}
	return protocol.AppendFileID(b, protocol.FileEnd, 1)
}

// fileStart returns the frames that begin name, a file of size bytes
// from bob, and carry its first n bytes (zeros), chunked or not.
func fileStart(chunked bool, name string, size int64, n int) []byte {
	var b []byte
	if chunked {
		b = protocol.AppendFileBegin(b, 1, "bob", name, size)
		b = protocol.ChunkHeader(b, 1, n)
	} else {
		b = protocol.AppendFileHead(b, protocol.ForwardFile, []string{"bob"}, name, size)
	}
	return append(b, make([]byte, n)...)
}

// syncGate holds a client's file syncs: entered is closed when the first
// sync starts, and the syncs go on once the gate is freed.
type syncGate struct {
	entered, release chan struct{}
	once             sync.Once
}

// newSyncGate returns a gate that the test's cleanup frees, so that a
// test that fails while the gate is shut does not leave the client's
// saver waiting for ever.
func newSyncGate(t *testing.T) *syncGate {
	g := &syncGate{entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(g.free)
	return g
}

// hold makes c's file syncs wait at g.
func (g *syncGate) hold(c *client) {
	var once sync.Once
	real := c.disk.sync
	c.disk.sync = func(f *os.File) error {
		once.Do(func() { close(g.entered) })
		<-g.release
		return real(f)
	}
}

// free lets the syncs go on; it may be called more than once.
func (g *syncGate) free() { g.once.Do(func() { close(g.release) }) }

// TestChatPrintsWhileFileSyncs: while a received file is synced, chat to
// the user from others is read and printed at once; the file's line comes
// once the file is synced and in place, never before, and the lines from
// the file's sender that came after it come after its line. Before issue
// 19 part 3 the receiver synced the file itself, and all chat waited for
// the sync (620-690 ms for 1 GiB).
func TestChatPrintsWhileFileSyncs(t *testing.T) {
	forEachDelivery(t, func(t *testing.T, d delivery) {
		addr := d.serve(t, func(nc net.Conn, r *protocol.Reader) {
			b := fileFrames(d.chunked, "notes.txt", bytes.Repeat([]byte("hello"), 100000))
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after"))
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"carol"}, []byte("meanwhile"))
			sendThenAwaitQuit(t, nc, r, b)
		})
		gate := newSyncGate(t)
		s := d.start(t, addr, func(c *client) {
			gate.hold(c)
		})
		s.await(t, gate.entered, "the file is synced")
		waitFor(t, s.stdout, "msg: carol: meanwhile\n")
		if got := s.stdout.String(); got != "msg: carol: meanwhile\n" {
			t.Errorf("stdout %q while the file syncs: want only carol's message", got)
		}
		if _, err := os.Stat(filepath.Join(s.dir, "me_notes.txt")); err == nil {
			t.Error("me_notes.txt exists before its sync ended")
		}
		gate.free()
		s.quitAfter(t, "msg: bob: after\n")
		if got, want := s.stdout.String(), "msg: carol: meanwhile\nfile: bob: notes.txt\nmsg: bob: after\nquitting\n"; got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
		if got, err := os.ReadFile(filepath.Join(s.dir, "me_notes.txt")); err != nil || len(got) != 500000 {
			t.Errorf("saved %d bytes, %v", len(got), err)
		}
		s.expectNoPartFiles(t)
	})
}

// TestSenderOrderKept: a sender's files and messages are printed in the
// order the sender sent them, however long each file takes to be saved,
// chunked or not.
func TestSenderOrderKept(t *testing.T) {
	forEachDelivery(t, func(t *testing.T, d delivery) {
		addr := d.serve(t, func(nc net.Conn, r *protocol.Reader) {
			b := fileFrames(d.chunked, "big.bin", make([]byte, 3<<20))
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("one"))
			b = append(b, fileFrames(false, "small.txt", []byte("x"))...)
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("two"))
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("three"))
			sendThenAwaitQuit(t, nc, r, b)
		})
		s := d.start(t, addr)
		s.quitAfter(t, "msg: bob: three\n")
		want := "file: bob: big.bin\nmsg: bob: one\nfile: bob: small.txt\nmsg: bob: two\nmsg: bob: three\nquitting\n"
		if got := s.stdout.String(); got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
	})
}

// TestSessionEndWaitsForSave: a file that has all arrived is saved and its
// line printed before the session's last line, whether the user quits or
// the connection is lost while the file is synced.
func TestSessionEndWaitsForSave(t *testing.T) {
	for _, end := range []string{"quit", "lost"} {
		t.Run(end, func(t *testing.T) {
			addr := fakeExtServer(t, func(nc net.Conn, r *protocol.Reader) {
				nc.Write(fileFrames(true, "notes.txt", make([]byte, 300<<10)))
				if end == "quit" {
					expectFrame(t, r, protocol.Disconnect)
				} // else return: the connection closes
			})
			gate := newSyncGate(t)
			s := startClientWith(t, addr, func(c *client) {
				c.cfg.Extensions = true
				gate.hold(c)
			})
			s.await(t, gate.entered, "the file is synced")
			if end == "quit" {
				s.input(t, "quit")
			}
			gate.free()
			if end == "lost" {
				s.stdin.Close() // piped input is read to its end after a disconnection
			}
			code := s.exit(t)
			last, wantCode := "quitting\n", 0
			if end == "lost" {
				last, wantCode = "disconnected: connection to server lost\n", 1
			}
			if got, want := s.stdout.String(), "file: bob: notes.txt\n"+last; got != want {
				t.Errorf("stdout %q, want %q", got, want)
			}
			if code != wantCode {
				t.Errorf("exit %d, want %d", code, wantCode)
			}
			if st, err := os.Stat(filepath.Join(s.dir, "me_notes.txt")); err != nil || st.Size() != 300<<10 {
				t.Errorf("saved file: %v", err)
			}
			s.expectNoPartFiles(t)
		})
	}
}

// TestSyncErrorRemovesFile: a disk error while a file is synced leaves
// nothing in the download folder, says so on stderr, prints no file line,
// and the session goes on.
func TestSyncErrorRemovesFile(t *testing.T) {
	forEachDelivery(t, func(t *testing.T, d delivery) {
		addr := d.serve(t, func(nc net.Conn, r *protocol.Reader) {
			b := fileFrames(d.chunked, "notes.txt", make([]byte, 300<<10))
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after"))
			sendThenAwaitQuit(t, nc, r, b)
		})
		s := d.start(t, addr, func(c *client) {
			c.disk.sync = func(*os.File) error { return syscall.EIO }
		})
		if code := s.quitAfter(t, "msg: bob: after\n"); code != 0 {
			t.Errorf("exit %d", code)
		}
		if got := s.stdout.String(); got != "msg: bob: after\nquitting\n" {
			t.Errorf("stdout %q", got)
		}
		if want := `client: cannot save "notes.txt" from bob: input/output error`; !strings.Contains(s.stderr.String(), want) {
			t.Errorf("stderr %q does not say %q", s.stderr.String(), want)
		}
		s.expectFiles(t)
	})
}

// TestEndMidDownload: quit, or a signal (Ctrl-C), in the middle of a
// download ends the session as quit does, for plain and chunked files
// alike: the temporary file is removed and the abandoned file named on
// stderr, and the saver has ended (goleak checks) when Run returns.
func TestEndMidDownload(t *testing.T) {
	for _, end := range []string{"quit", "signal"} {
		t.Run(end, func(t *testing.T) {
			forEachDelivery(t, func(t *testing.T, d delivery) {
				addr := d.serve(t, func(nc net.Conn, r *protocol.Reader) {
					sendThenAwaitQuit(t, nc, r, fileStart(d.chunked, "big.bin", 1<<20, 1000))
				})
				var receiving <-chan struct{}
				s := d.start(t, addr, func(c *client) {
					receiving = transferStarted(c, "recv")
				})
				s.await(t, receiving, "the download started")
				if len(partFiles(t, s.dir)) != 1 {
					t.Fatal("no temporary file while the download runs")
				}
				if end == "quit" {
					s.input(t, "quit")
				} else {
					s.signal()
				}
				if got := s.exit(t); got != ExitOK {
					t.Errorf("exit %d", got)
				}
				if got := s.stdout.String(); got != "quitting\n" {
					t.Errorf("stdout %q", got)
				}
				if want := `abandoned "big.bin" from bob after 1000 of 1048576 bytes`; !strings.Contains(s.stderr.String(), want) {
					t.Errorf("stderr %q does not contain %q", s.stderr.String(), want)
				}
				s.expectFiles(t)
			})
		})
	}
}

// TestWritebackDuringDownload: the saver's flusher hands the file to the
// disk as it is written, window after window from its start, waiting for
// each window once it has started the next, and all of it before the
// final sync.
func TestWritebackDuringDownload(t *testing.T) {
	const size = 5*writebackWindow/2 + 1000
	addr := fakeExtServer(t, func(nc net.Conn, r *protocol.Reader) {
		sendThenAwaitQuit(t, nc, r, fileFrames(true, "big.bin", make([]byte, size)))
	})
	type call struct {
		what   string
		off, n int64
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	note := func(c call) {
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
	}
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions = true
		real := c.disk
		c.disk.writeback = func(f *os.File, off, n int64, wait bool) {
			what := "start"
			if wait {
				what = "wait"
			}
			note(call{what, off, n})
			real.writeback(f, off, n, wait)
		}
		c.disk.sync = func(f *os.File) error {
			note(call{what: "sync"})
			return real.sync(f)
		}
	})
	s.quitAfter(t, "file: bob: big.bin\n")
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 2 || calls[0].what != "start" || calls[len(calls)-1].what != "sync" {
		t.Fatalf("disk calls %v, want a start of writeback first and the sync last", calls)
	}
	var next int64 // where the next start begins
	var last call  // the last start
	for _, c := range calls[:len(calls)-1] {
		switch c.what {
		case "start":
			if c.off != next || c.n < writebackWindow {
				t.Errorf("writeback started at %s+%s, want at %s, a window or more", fmtMiB(c.off), fmtMiB(c.n), fmtMiB(next))
			}
			next, last = c.off+c.n, c
		case "wait":
			if c.off+c.n != last.off || c.n <= 0 {
				t.Errorf("waited for %s+%s, want the range before the one started last (%s+%s)", fmtMiB(c.off), fmtMiB(c.n), fmtMiB(last.off), fmtMiB(last.n))
			}
		default:
			t.Errorf("disk call %v before the end", c)
		}
	}
	if next > size {
		t.Errorf("writeback reached %s of a file of %s", fmtMiB(next), fmtMiB(size))
	}
}

// fmtMiB formats n bytes in MiB for test messages.
func fmtMiB(n int64) string { return fmt.Sprintf("%gMiB", float64(n)/(1<<20)) }

// TestHeldLinesBounded: a sender's lines held behind its file being synced
// take at most maxHeld bytes; past that they are printed at once, rather
// than held in memory for as long as the disk takes.
func TestHeldLinesBounded(t *testing.T) {
	const n, size = 20, 60000
	addr := fakeExtServer(t, func(nc net.Conn, r *protocol.Reader) {
		b := fileFrames(true, "notes.txt", make([]byte, 1000))
		for i := range n {
			text := fmt.Appendf(nil, "%02d %s", i, bytes.Repeat([]byte("x"), size))
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, text)
		}
		sendThenAwaitQuit(t, nc, r, b)
	})
	gate := newSyncGate(t)
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions = true
		gate.hold(c)
	})
	s.await(t, gate.entered, "the file is synced")
	waitFor(t, s.stdout, fmt.Sprintf("msg: bob: %02d ", n-1))
	out := s.stdout.String()
	if strings.Contains(out, "file: ") || strings.Contains(out, "msg: bob: 00 ") {
		t.Errorf("while the file syncs, stdout has its line or the first message held")
	}
	if held := n - strings.Count(out, "msg: bob: "); held*size > maxHeld || held == 0 {
		t.Errorf("%d messages of %d bytes held while the file syncs, want at most %d bytes", held, size, maxHeld)
	}
	gate.free()
	s.quitAfter(t, "msg: bob: 00 ")
	if got := strings.Count(s.stdout.String(), "msg: bob: "); got != n {
		t.Errorf("%d messages printed, want %d", got, n)
	}
}
