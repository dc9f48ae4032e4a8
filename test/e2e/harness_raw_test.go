package e2e

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// ---------------------------------------------------------------------------
// Raw sockets speaking the framing of PROTOCOL.md section 2, through the
// shared test client internal/chattest (issue 24 item 1).
//
// What the suite sends is written by hand (fr), not by internal/protocol's
// encoders, so a wrong encoder shared by the server and the client cannot
// hide from it. What it reads goes through protocol.Reader, whose framing
// rules (no leading zero, no empty type, EOF only between frames) are
// tested and fuzzed in internal/protocol; where the exact bytes of an
// answer matter (the refusals of a join race) the test reads them raw.
// ---------------------------------------------------------------------------

// fr encodes one frame: TYPE SP LENGTH SP PAYLOAD.
func fr(typ, payload string) []byte {
	return []byte(typ + " " + strconv.Itoa(len(payload)) + " " + payload)
}

// wrapRaw makes c a raw connection labelled label, with the suite's
// timeout on each read and write.
func wrapRaw(t testing.TB, label string, c net.Conn) *chattest.Conn {
	rc := chattest.New(t, label, c)
	rc.Timeout = timeout
	return rc
}

// dialRaw opens a raw TCP connection to 127.0.0.1:port.
func dialRaw(t testing.TB, port int, label string) *chattest.Conn {
	t.Helper()
	rc := chattest.Dial(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), label)
	rc.Timeout = timeout
	return rc
}

// rawJoin opens a raw connection, joins as name and waits for `join: name`.
func rawJoin(t testing.TB, srv *server, name string) *chattest.Conn {
	t.Helper()
	rc := sendJoin(t, srv, name, name)
	srv.out.waitLine(t, "join: "+name, timeout)
	return rc
}

// sendJoin opens a raw connection labelled label and sends a join as
// name, without waiting for anything.
func sendJoin(t testing.TB, srv *server, label, name string) *chattest.Conn {
	t.Helper()
	rc := dialRaw(t, srv.port, label)
	rc.Write(fr("join", name))
	return rc
}

// rawStalled is rawJoin for a recipient that will read nothing: its
// receive buffer is 4 KiB, so that what the server sends it backs up at
// once.
func rawStalled(t testing.TB, srv *server, name string) *chattest.Conn {
	t.Helper()
	rc := rawJoin(t, srv, name)
	_ = rc.TCP().SetReadBuffer(4 << 10)
	return rc
}

// refusal is how the server refuses a join (PROTOCOL.md section 4): the
// frame the joiner gets before the close, and the server's line.
type refusal struct {
	frame protocol.Type
	line  string
}

var (
	refusedFull  = refusal{protocol.ErrServerFull, "disconnected: server full"}
	refusedTaken = refusal{protocol.ErrUsernameUnavailable, "disconnected: username not available"}
)

// rawRefused opens a raw connection labelled label, writes data, and
// requires the refusal r: its frame and a clean close, and its server line.
func rawRefused(t testing.TB, srv *server, label string, data []byte, r refusal) {
	t.Helper()
	rc := dialRaw(t, srv.port, label)
	rc.Write(data)
	rc.ExpectRefused(r.frame)
	srv.out.waitLine(t, r.line, timeout)
}

// rawList is syncList for a raw connection: it asks for the users list,
// waits for the server's line and requires the answer payload list.
func rawList(t testing.TB, srv *server, rc *chattest.Conn, list string) {
	t.Helper()
	rc.Write(fr("request_users_list", ""))
	srv.out.waitLine(t, "request_users_list: "+rc.Name, timeout)
	rc.Expect(protocol.ResponseUsersList, list)
}

// sendTicking has c send to, one every 50 ms (20 a second), the messages
// m1 to mN, from a goroutine of its own; the channel says how that ended
// (nil once all are written, or the first write's error).
func sendTicking(c *chattest.Conn, to string, n int) <-chan error {
	sent := make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 1; i <= n; i++ {
			<-tick.C
			if err := c.TryWrite(fr("send_message", fmt.Sprintf("1 %s m%d", to, i))); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	return sent
}
