package e2e

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gochat/chat/internal/protocol"
)

// How the programs start and end: PROTOCOL.md sections 1 and 5, and the
// signals of OPERATIONS.md.

// silentPort returns a port on 127.0.0.1 that never answers a TCP
// handshake: a socket listens there with a backlog of 0 and never accepts,
// and connections fill its accept queue, so that Linux drops every further
// SYN. It is checked by a connection attempt that times out.
func silentPort(t testing.TB) int {
	t.Helper()
	fd, port := boundSocket(t)
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; ; i++ {
		if i == 5 {
			t.Fatalf("the listener on %s with a full accept queue still completes handshakes", addr)
		}
		// The first connection must be taken; a later one that is not
		// answered within a second shows the queue full.
		d := time.Second
		if i == 0 {
			d = timeout
		}
		c, err := net.DialTimeout("tcp", addr, d)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			continue // one more in the queue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("connecting to %s: %v, want a timeout", addr, err)
		}
		return port
	}
}

// A client whose server never answers the TCP handshake gives up after
// 10 s: a message on stderr, nothing on stdout, exit 1.
func TestClientConnectTimeout(t *testing.T) {
	t.Parallel()
	port := silentPort(t)
	_, home := newHome(t)
	start := time.Now()
	p := startProc(t, "client alice", clientBin, home, []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-u", "alice"})
	p.expectExit(t, 1, 60*time.Second)
	if el := time.Since(start); el < 9*time.Second {
		t.Errorf("the client gave up after %v; it must try for 10 s", el)
	}
	p.out.expectEnd(t, timeout)
	p.errs.waitClosed(t, timeout)
	if !p.errs.wroteAnything() {
		t.Errorf("the client printed nothing on stderr when it gave up\n%s", p.dump())
	}
}

// SIGINT and SIGTERM quit a client as the quit command does: it sends
// disconnect, shuts its writing side, prints quitting and exits 0.
func TestClientSignalsQuit(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		// The frames, against a fake server.
		t.Run(sig.String()+" frames", func(t *testing.T) {
			t.Parallel()
			c, rc := clientOnFake(t, "alice")
			c.send(t, "msg 1 bob before the signal")
			rc.Expect(protocol.SendMessage, "1 bob before the signal")
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			c.expectQuitOnFake(t, rc)
		})
		// The session, against the real server.
		t.Run(sig.String()+" session", func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			alice := joinClient(t, srv, "alice")
			bob := joinClient(t, srv, "bob")
			alice.tell(t, srv, bob, "before the signal")
			if err := alice.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			srv.out.waitLine(t, "disconnected: alice", timeout)
			alice.out.waitLine(t, "quitting", timeout)
			alice.expectExit(t, 0, timeout)
			alice.out.expectEnd(t, timeout)
			syncList(t, srv, bob, "bob")
			bob.quit(t, srv)
		})
	}
}

// listIs has c ask for the list and requires the answer as its next line.
func listIs(t *testing.T, c *client, list string) {
	t.Helper()
	c.send(t, "list")
	c.out.waitLine(t, "list: "+list, timeout)
}

// The server keeps serving when its stdout is closed (writes fail with
// EPIPE) or never read (writes block once the pipe is full).
func TestServerStdoutGone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		closed bool
	}{{"closed", true}, {"never read", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			defer r.Close()
			if tc.closed {
				r.Close()
			} else if _, err := unix.FcntlInt(r.Fd(), unix.F_SETPIPE_SZ, 4096); err != nil {
				t.Fatal(err)
			}
			srv := startServerStdout(t, w)
			w.Close() // the server has its own copy

			// The server's lines cannot be seen: each step waits for what
			// the clients print.
			alice := startClient(t, srv.port, "alice")
			listIs(t, alice, "alice")
			bob := startClient(t, srv.port, "bob")
			listIs(t, bob, "alice bob")
			// 2 x 1024 lines of `msg: bob to non-existent user ...`, about
			// 90 KB: far more than the 4 KiB pipe holds.
			var names []string
			for i := range 1024 {
				names = append(names, "nobody"+itoa(i))
			}
			for range 2 {
				bob.send(t, "msg 1024 "+strings.Join(names, " ")+" hello?")
			}
			bob.send(t, "msg 2 alice bob after the flood of lines")
			alice.out.waitLine(t, "msg: bob: after the flood of lines", timeout)
			bob.out.waitLine(t, "msg: bob: after the flood of lines", timeout)
			if !tc.closed {
				n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ) // FIONREAD
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					t.Fatal("the server wrote nothing to its stdout pipe")
				}
				t.Logf("%d bytes in the server's stdout pipe, of some 90 KB printed: its writer waits", n)
			}
			// Joins, messages and lists go on.
			carol := startClient(t, srv.port, "carol")
			listIs(t, carol, "alice bob carol")
			carol.send(t, "msg 1 alice hi from carol")
			alice.out.waitLine(t, "msg: carol: hi from carol", timeout)
			for _, c := range []*client{alice, bob, carol} {
				c.quit(t, nil)
			}
			srv.requireRunning(t)
			if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			srv.expectExit(t, 0, 3*timeout)
		})
	}
}
