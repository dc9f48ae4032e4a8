package e2e

import (
	"net"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// ---------------------------------------------------------------------------
// A fake server: a TCP listener in the test that a real client connects to.
// ---------------------------------------------------------------------------

type fakeServer struct {
	ln   *net.TCPListener
	port int
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fakeServer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
}

// accept waits for the next connection.
func (f *fakeServer) accept(t testing.TB) *chattest.Conn {
	t.Helper()
	if err := f.ln.SetDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	c, err := f.ln.AcceptTCP()
	if err != nil {
		t.Fatalf("fake server: accept: %v", err)
	}
	return wrapRaw(t, "fake-server side", c)
}

// clientOnFake starts a real client named name, speaking only the
// contract (--plain), against a fresh fake server, accepts its connection
// and checks that its first frame is exactly `join LEN name`.
func clientOnFake(t testing.TB, name string, extra ...string) (*client, *chattest.Conn) {
	t.Helper()
	fs := newFakeServer(t)
	c := startClient(t, fs.port, name, append([]string{"--plain"}, extra...)...)
	rc := fs.accept(t)
	rc.Expect(protocol.Join, name)
	return c, rc
}

// expectQuitOnFake checks a client quitting against a fake server, once
// something (quit, end of input, a signal) has made it quit: its disconnect
// frame and the shutdown of its writing side on rc; then, when the fake
// server closes, `quitting` as its last line and exit status 0.
func (c *client) expectQuitOnFake(t testing.TB, rc *chattest.Conn) {
	t.Helper()
	rc.Expect(protocol.Disconnect, c.name)
	rc.ExpectClosed()
	rc.NC.Close()
	c.out.waitLine(t, "quitting", timeout)
	c.expectExit(t, 0, timeout)
	c.out.expectEnd(t, timeout)
}
