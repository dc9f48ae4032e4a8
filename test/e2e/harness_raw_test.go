package e2e

import (
	"net"
	"strconv"
	"testing"

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
	rc := dialRaw(t, srv.port, name)
	rc.Write(fr("join", name))
	srv.out.waitLine(t, "join: "+name, timeout)
	return rc
}

// rawList is syncList for a raw connection: it asks for the users list,
// waits for the server's line and requires the answer payload list.
func rawList(t testing.TB, srv *server, rc *chattest.Conn, list string) {
	t.Helper()
	rc.Write(fr("request_users_list", ""))
	srv.out.waitLine(t, "request_users_list: "+rc.Name, timeout)
	rc.Expect(protocol.ResponseUsersList, list)
}
