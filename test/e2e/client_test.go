package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gochat/chat/internal/protocol"
)

// PROTOCOL.md section 5: the client, mostly against a fake server.

// The frames the client sends, byte for byte.
func TestClientFrames(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	c.send(t, "list")
	rc.Expect(protocol.RequestUsersList, "")
	c.send(t, "msg 2 bob carol Hello my friends!")
	rc.Expect(protocol.SendMessage, "2 bob carol Hello my friends!")
	c.send(t, "  msg\t1   bob \t spaced   text\there  \r")
	rc.Expect(protocol.SendMessage, "1 bob spaced   text\there")
	var content []byte
	for i := range 512 {
		content = append(content, byte(i))
	}
	writeFile(t, filepath.Join(c.home, "x.bin"), content)
	c.send(t, "file 2 bob carol x.bin")
	rc.Expect(protocol.SendFile, "2 bob carol x.bin "+string(content))
	writeFile(t, filepath.Join(c.home, "empty"), nil)
	c.send(t, "file 1 bob empty")
	rc.Expect(protocol.SendFile, "1 bob empty ")
	// help and bad input send nothing: the next frame is the disconnect.
	c.send(t, "help")
	c.send(t, "nonsense")
	// quit: disconnect, then the writing side is shut (EOF here) while the
	// client still reads; what arrives before the close is printed.
	c.send(t, "quit")
	rc.Expect(protocol.Disconnect, "alice")
	rc.ExpectClosed()
	rc.Write(fr("forward_message", "1 bob late reply"))
	rc.NC.Close()
	c.out.skipTo(t, "incorrect user input format", timeout) // after the help text
	c.out.waitLines(t, timeout, "msg: bob: late reply", "quitting")
	c.expectExit(t, 0, timeout)
	c.out.expectEnd(t, timeout)
}

// End of input is the same as quit.
func TestClientEOFIsQuitOnFake(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	c.closeStdin()
	c.expectQuitOnFake(t, rc)
}

// A relay that never passes the close on costs at most about 1 s.
func TestClientQuitServerNeverCloses(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	start := time.Now()
	c.send(t, "quit")
	rc.Expect(protocol.Disconnect, "alice")
	rc.ExpectClosed()
	// The fake server keeps the connection open.
	c.out.waitLine(t, "quitting", timeout)
	c.expectExit(t, 0, timeout)
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("quit took %v with a server that does not close (at most 1 s of waiting)", el)
	}
	c.out.expectEnd(t, timeout)
}

// printf 'list\nquit\n' | client -u me, and the same without quit: the
// end of input is quit.
func TestClientQuitPipe(t *testing.T) {
	t.Parallel()
	for name, input := range map[string]string{"quit": "list\nquit\n", "end of input": "list\n"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			me := startClient(t, srv.port, "me")
			me.write(t, []byte(input))
			me.closeStdin()
			srv.out.waitLines(t, timeout, "join: me", "request_users_list: me", "disconnected: me")
			me.out.waitLines(t, timeout, "list: me", "quitting")
			me.expectExit(t, 0, timeout)
			me.out.expectEnd(t, timeout)
			assertServing(t, srv)
		})
	}
}

// err_* frames: the matching line, the connection closed, stdin read until
// its end, exit 1.
func TestClientErrFrames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ typ, payload, line string }{
		{"err_unknown_message", "", "disconnected: server received an unknown command"},
		{"err_server_full", "", "disconnected: server full"},
		{"err_username_unavailable", "", "disconnected: username not available"},
		{"err_unknown_message", "ignored payload", "disconnected: server received an unknown command"},
		{"err_server_full", "x", "disconnected: server full"},
		{"err_username_unavailable", "1 alice", "disconnected: username not available"},
	} {
		t.Run(tc.typ+"/"+fmt.Sprint(len(tc.payload)), func(t *testing.T) {
			t.Parallel()
			c, rc := clientOnFake(t, "alice")
			rc.Write(fr(tc.typ, tc.payload))
			c.out.waitLine(t, tc.line, timeout)
			rc.ExpectClosed() // the client closed the connection
			c.expectExit1AfterDisconnect(t)
		})
	}
	t.Run("quit-after-disconnected", func(t *testing.T) {
		t.Parallel()
		c, rc := clientOnFake(t, "alice")
		rc.Write(fr("err_server_full", ""))
		c.out.waitLine(t, "disconnected: server full", timeout)
		rc.ExpectClosed()
		c.send(t, "list")
		c.send(t, "quit") // ends the discarding: exit 1, nothing printed
		c.expectExit(t, 1, timeout)
		c.out.expectEnd(t, timeout)
	})
}

// With piped stdin the client keeps reading after the session is over (so
// the feeding program never meets a closed pipe), until quit.
func TestClientDiscardsInputAfterDisconnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice")
	dup := startClient(t, srv.port, "alice")
	srv.out.waitLine(t, "disconnected: username not available", timeout)
	dup.out.waitLine(t, "disconnected: username not available", timeout)
	// 4 MiB of input, far more than a pipe buffers: it is all read.
	junk := []byte(strings.Repeat("list\nmsg 1 alice junk\nhelp\nnonsense here\n", 4<<20/45))
	dup.write(t, junk)
	dup.requireRunning(t)
	dup.send(t, "quit")
	dup.expectExit(t, 1, timeout)
	dup.out.expectEnd(t, timeout)
	// Nothing of it reached the server or alice.
	syncList(t, srv, alice, "alice")
}

// On a terminal the client exits at once after a disconnected line.
func TestClientTerminalExitsAtOnce(t *testing.T) {
	t.Parallel()
	master, slave := openPty(t)
	defer master.Close()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice")
	_, home := newHome(t)
	p := startProcStdin(t, "client alice(tty)", clientBin, home,
		[]string{"-a", "127.0.0.1", "-p", itoa(srv.port), "-u", "alice"}, slave)
	slave.Close()
	srv.out.waitLine(t, "disconnected: username not available", timeout)
	p.out.waitLine(t, "disconnected: username not available", timeout)
	p.expectExit(t, 1, timeout) // stdin (the terminal) is still open
	p.out.expectEnd(t, timeout)
	syncList(t, srv, alice, "alice")
}

func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal available: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		t.Skipf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		m.Close()
		t.Skipf("ptsname: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pty slave: %v", err)
	}
	return m, s
}

// A forward_file whose filename breaks section 3 writes nothing, prints
// nothing on stdout (a note on stderr), and the session goes on.
func TestClientHostileForwardFile(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	writeFile(t, filepath.Join(c.home, "alice_ok.txt"), []byte("old"))
	hostile := hostileFilenames(c.base + "/evil")
	n := c.errs.count()
	for _, name := range hostile {
		rc.Write(fr("forward_file", "1 mallory "+name+" evil content"))
	}
	good := "good \x00\xff\n content"
	rc.Write(fr("forward_file", "1 mallory ok.txt "+good))
	rc.Write(fr("forward_message", "1 mallory still talking"))
	c.out.waitLines(t, timeout, "file: mallory: ok.txt", "msg: mallory: still talking")
	c.errs.waitCount(t, n+len(hostile), timeout, "one note per refused file")
	expectFileContent(t, filepath.Join(c.home, "alice_ok.txt"), []byte(good))
	c.expectHomeFiles(t, "alice_ok.txt")
	if _, err := os.Stat("/evil"); err == nil {
		t.Errorf("/evil exists")
	}
	c.quit(t, nil)
}

// The saved name <user>_<filename> may be at most 255 bytes.
func TestClientSavedNameLength(t *testing.T) {
	t.Parallel()
	user := strings.Repeat("😀", 32) // 128 bytes
	c, rc := clientOnFake(t, user)
	fit := strings.Repeat("a", 126)  // 128 + 1 + 126 = 255
	over := strings.Repeat("b", 127) // 256
	n := c.errs.count()
	rc.Write(fr("forward_file", "1 mallory "+over+" too long"))
	rc.Write(fr("forward_file", "1 mallory "+fit+" fits"))
	c.out.waitLine(t, "file: mallory: "+fit, timeout)
	c.errs.waitCount(t, n+1, timeout, "note about the refused file")
	expectFileContent(t, filepath.Join(c.home, user+"_"+fit), []byte("fits"))
	c.expectHomeFiles(t, user+"_"+fit)
	c.quit(t, nil)
}

// Unknown frame types and malformed payloads are ignored (noted on stderr).
func TestClientIgnoresUnknownAndMalformed(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	frames := [][]byte{
		fr("bogus", "abc"),
		fr("hello", ""),
		fr("send_message", "1 alice hi"),
		fr("join", "bob"),
		fr("forward_message", "2 bob carol hi"),
		fr("forward_message", "0 hi"),
		fr("forward_message", "01 bob hi"),
		fr("forward_message", "x bob hi"),
		fr("forward_message", "1 b/ob hi"),
		fr("forward_message", "1 bob"),
		fr("forward_message", "1 bob "),
		fr("forward_message", "1 bob hi\x01"),
		fr("forward_message", "1 bob hi\nthere"),
		fr("forward_message", "1 bob \xff"),
		fr("forward_message", ""),
		fr("forward_file", "1 mallory"),
		fr("forward_file", "1 mallory name"),
		fr("forward_file", "2 a b f.txt x"),
		fr("response_users_list", "3 a b"),
		fr("response_users_list", "x a"),
		fr("response_users_list", "1 a/b"),
		fr("response_users_list", ""),
	}
	n := c.errs.count()
	for _, f := range frames {
		rc.Write(f)
	}
	rc.Write(fr("forward_message", "1 bob valid"))
	c.out.waitLine(t, "msg: bob: valid", timeout)
	c.errs.waitCount(t, n+len(frames), timeout, "one note per ignored frame")
	c.expectHomeFiles(t)
	c.quit(t, nil)
}

// A response_users_list is printed sorted ascending by bytes.
func TestClientListPrinting(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	rc.Write(fr("response_users_list", "1 alice"))
	rc.Write(fr("response_users_list", "3 alice bob carol"))
	rc.Write(fr("response_users_list", "3 carol alice bob"))
	rc.Write(fr("response_users_list", "5 b B a _ É"))
	c.out.waitLines(t, timeout,
		"list: alice",
		"list: alice bob carol",
		"list: alice bob carol",
		"list: B _ a b É",
	)
	c.quit(t, nil)
}

// Frames split over many reads, and several frames in one read.
func TestClientFramingSplit(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	rc.WriteBytewise(fr("forward_message", "1 bob one byte at a time"))
	c.out.waitLine(t, "msg: bob: one byte at a time", timeout)
	var b bytes.Buffer
	b.Write(fr("forward_message", "1 bob first"))
	b.Write(fr("response_users_list", "2 alice bob"))
	b.Write(fr("forward_file", "1 bob f.txt a b\nc"))
	third := fr("forward_message", "1 carol third  with  spaces\t!")
	b.Write(third[:10])
	rc.Write(b.Bytes())
	c.out.waitLines(t, timeout, "msg: bob: first", "list: alice bob", "file: bob: f.txt")
	rc.Write(third[10:])
	c.out.waitLine(t, "msg: carol: third  with  spaces\t!", timeout)
	expectFileContent(t, filepath.Join(c.home, "alice_f.txt"), []byte("a b\nc"))
	c.quit(t, nil)
}

// A stream that cannot be decoded, or that ends, ends the session with
// `disconnected: connection to server lost`.
func TestClientConnectionLost(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		send      string
		closeConn bool
	}{
		// Only the header is sent, so that the client has read every byte
		// when it closes (no reset).
		"non-numeric length": {"forward_message x ", false},
		"leading zero":       {"forward_message 010 ", false},
		"negative length":    {"forward_message -5 ", false},
		"empty length":       {"forward_message  ", false},
		"plain close":        {"", true},
		"close mid header":   {"forward_mes", true},
		"close mid length":   {"forward_message 1", true},
		"close mid payload":  {"forward_message 100 1 bob hi", true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, rc := clientOnFake(t, "alice")
			if tc.send != "" {
				rc.Write([]byte(tc.send))
			}
			if tc.closeConn {
				rc.NC.Close()
			}
			c.out.waitLine(t, "disconnected: connection to server lost", timeout)
			if !tc.closeConn {
				rc.ExpectClosed() // the client closed its side
			}
			c.expectExit1AfterDisconnect(t)
			c.expectHomeFiles(t)
		})
	}
}

// A server that drops in the middle of a forward_file: connection lost, and
// no file, not even a temporary one, is left.
func TestClientDropMidForwardFile(t *testing.T) {
	t.Parallel()
	for name, got := range map[string]int{"no content yet": 0, "half the content": 50000} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, rc := clientOnFake(t, "alice")
			head := "1 mallory big.bin "
			rc.Write([]byte("forward_file " + itoa(len(head)+100000) + " " + head))
			rc.Write(bytes.Repeat([]byte{'q'}, got))
			rc.NC.Close()
			c.expectDisconnectedExit1(t, "disconnected: connection to server lost")
			c.expectHomeFiles(t)
		})
	}
}

// A file that cannot be saved prints no file line (a note on stderr), leaves
// nothing behind, and the session goes on.
func TestClientCannotSaveFile(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	// A non-empty directory in the way of alice_x.txt: it cannot be replaced.
	writeFile(t, filepath.Join(c.home, "alice_x.txt", "keep"), []byte("keep"))
	n := c.errs.count()
	rc.Write(fr("forward_file", "1 bob x.txt new content"))
	rc.Write(fr("forward_message", "1 bob after"))
	c.out.waitLine(t, "msg: bob: after", timeout)
	c.errs.waitCount(t, n+1, timeout, "note about the file that cannot be saved")
	c.expectHomeFiles(t, "alice_x.txt")
	expectDirEntries(t, filepath.Join(c.home, "alice_x.txt"), "keep")
	c.quit(t, nil)
}
