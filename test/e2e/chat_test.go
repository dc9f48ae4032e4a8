package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// PROTOCOL.md sections 3, 4 and 5: list, msg, help, input handling.

// trio starts a server with alice, bob and carol joined (in that order).
func trio(t *testing.T, extra ...string) (*server, *client, *client, *client) {
	t.Helper()
	srv := startServer(t, extra...)
	return srv, joinClient(t, srv, "alice"), joinClient(t, srv, "bob"), joinClient(t, srv, "carol")
}

// withBob starts a server with bob joined: a real client, whose stdout
// shows what reached him.
func withBob(t *testing.T) (*server, *client) {
	t.Helper()
	srv := startServer(t)
	return srv, joinClient(t, srv, "bob")
}

// duo is trio without carol.
func duo(t *testing.T) (*server, *client, *client) {
	t.Helper()
	srv := startServer(t)
	return srv, joinClient(t, srv, "alice"), joinClient(t, srv, "bob")
}

func TestListSortedByBytes(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	// Joined in an order unrelated to the sorted one; byte order puts digits,
	// then capitals, then "_", then lower case, then non-ASCII.
	var cs []*client
	for _, n := range []string{"bob", "Zed", "alice", "Émile", "_x", "123"} {
		cs = append(cs, joinClient(t, srv, n))
	}
	alice := cs[2]
	syncList(t, srv, alice, "123 Zed _x alice bob Émile")
	syncList(t, srv, cs[1], "123 Zed _x alice bob Émile")
	cs[0].quit(t, srv) // bob leaves
	syncList(t, srv, alice, "123 Zed _x alice Émile")
	// The raw frame itself: all connected users, sorted, with N first.
	rc := rawJoin(t, srv, "aa")
	rawList(t, srv, rc, "6 123 Zed _x aa alice Émile")
}

func TestMsgToSeveral(t *testing.T) {
	t.Parallel()
	srv, alice, bob, carol := trio(t)
	alice.send(t, "msg 2 bob carol Hello my friends!")
	srv.out.waitLine(t, "msg: alice", timeout)
	bob.out.waitLine(t, "msg: alice: Hello my friends!", timeout)
	carol.out.waitLine(t, "msg: alice: Hello my friends!", timeout)
	// The sender, not named, got nothing.
	syncList(t, srv, alice, "alice bob carol")
	// Replies flow the other way too.
	carol.tell(t, srv, alice, "back at you")
	syncList(t, srv, bob, "alice bob carol")
}

// A name listed several times gets the message once.
func TestMsgDuplicateRecipients(t *testing.T) {
	t.Parallel()
	srv, alice, bob, carol := trio(t)
	alice.send(t, "msg 4 bob carol bob bob twice?")
	alice.send(t, "msg 1 bob second")
	alice.send(t, "msg 1 carol second")
	srv.out.waitLines(t, timeout, "msg: alice", "msg: alice", "msg: alice")
	// Messages from one sender arrive in order, so a duplicate would come
	// before "second".
	bob.out.waitLines(t, timeout, "msg: alice: twice?", "msg: alice: second")
	carol.out.waitLines(t, timeout, "msg: alice: twice?", "msg: alice: second")
	// The same through the raw protocol.
	rc := rawJoin(t, srv, "raw")
	rc.Write(fr("send_message", "3 raw raw raw hello me"))
	rc.Write(fr("send_message", "1 raw after"))
	srv.out.waitLines(t, timeout, "msg: raw", "msg: raw")
	rc.Expect(protocol.ForwardMessage, "1 raw hello me")
	rc.Expect(protocol.ForwardMessage, "1 raw after")
}

func TestMsgToSelf(t *testing.T) {
	t.Parallel()
	srv, alice, bob, _ := trio(t)
	alice.tell(t, srv, alice, "note to self")
	alice.send(t, "msg 2 alice bob to both")
	srv.out.waitLine(t, "msg: alice", timeout)
	alice.out.waitLine(t, "msg: alice: to both", timeout)
	bob.out.waitLine(t, "msg: alice: to both", timeout)
}

// Names not connected: one line each, distinct, in order of first appearance.
func TestMsgNonExistent(t *testing.T) {
	t.Parallel()
	srv, alice, bob, carol := trio(t)
	alice.send(t, "msg 6 zed bob yan zed carol yan hi all")
	srv.out.waitLines(t, timeout,
		"msg: alice",
		"msg: alice to non-existent user zed",
		"msg: alice to non-existent user yan",
	)
	bob.out.waitLine(t, "msg: alice: hi all", timeout)
	carol.out.waitLine(t, "msg: alice: hi all", timeout)

	alice.send(t, "msg 1 zed anyone?")
	srv.out.waitLines(t, timeout, "msg: alice", "msg: alice to non-existent user zed")
	// A user who left no longer exists; names are case-sensitive.
	carol.quit(t, srv)
	alice.send(t, "msg 3 carol Bob bob hey")
	srv.out.waitLines(t, timeout,
		"msg: alice",
		"msg: alice to non-existent user carol",
		"msg: alice to non-existent user Bob",
	)
	bob.out.waitLine(t, "msg: alice: hey", timeout)
	syncList(t, srv, alice, "alice bob")
	syncList(t, srv, bob, "alice bob")
}

// Leading/trailing whitespace (Unicode White_Space, CRLF) is ignored, fields
// are separated by runs of spaces or tabs, and the text keeps its inner
// spacing.
func TestMsgInputWhitespace(t *testing.T) {
	t.Parallel()
	srv, alice, bob, carol := trio(t)
	alice.write(t, []byte("   msg 1 bob hi there  \r\n"))
	srv.out.waitLine(t, "msg: alice", timeout)
	bob.out.waitLine(t, "msg: alice: hi there", timeout)

	alice.write(t, []byte("\tmsg\t1\tbob\thi\tthere\t\r\n"))
	srv.out.waitLine(t, "msg: alice", timeout)
	bob.out.waitLine(t, "msg: alice: hi\tthere", timeout)

	alice.send(t, "msg   2  bob \t carol  \t  a  b\t c   d")
	srv.out.waitLine(t, "msg: alice", timeout)
	bob.out.waitLine(t, "msg: alice: a  b\t c   d", timeout)
	carol.out.waitLine(t, "msg: alice: a  b\t c   d", timeout)

	alice.send(t, "\u3000\u00a0msg 1 bob unicode spaces around\u2003\u00a0")
	srv.out.waitLine(t, "msg: alice", timeout)
	bob.out.waitLine(t, "msg: alice: unicode spaces around", timeout)

	// Characters that are not whitespace stay in the text, format
	// characters included.
	alice.tell(t, srv, bob, "zero\u200bwidth, emoji 😀, é")

	// Empty and blank lines do nothing.
	alice.write(t, []byte("\n   \n\t\t\n\r\n \u00a0 \n"))
	alice.write(t, []byte("list\r\n"))
	expectList(t, srv, alice, "alice bob carol")
	alice.write(t, []byte("  \tlist \t\r\n"))
	expectList(t, srv, alice, "alice bob carol")
	syncList(t, srv, bob, "alice bob carol")
	syncList(t, srv, carol, "alice bob carol")
}

func TestMsgBadInput(t *testing.T) {
	t.Parallel()
	srv, alice, bob, _ := trio(t)
	bad := []string{
		"msg",
		"msg 0 bob hi",
		"msg 2 bob hi", // count mismatch: "hi" is a name, no text left
		"msg 01 bob hi",
		"msg +1 bob hi",
		"msg -1 bob hi",
		"msg x bob hi",
		"msg 1",
		"msg 1 bob",
		"msg 1 bob   ",
		"msg 1 b/ob hi",
		`msg 1 b\ob hi`,
		"msg 1 .. hi",
		"msg 1 . hi",
		"msg 1 " + strings.Repeat("b", 33) + " hi",
		"msg 1 bob\u00a0hi",     // no-break space is not a separator: one bad name, no text
		"msg 1 bob\u200b hi",    // name with a format character
		"msg 1 bob hi\x01there", // text with a control character
		"msg 1 bob hi\x7f",
		"msg 1 bob hi\u0085there",
		"msg 1 bob \xff\xfe",
		"msg1 bob hi",
		"MSG 1 bob hi",
		"Msg 1 bob hi",
		"foo",
		"foo bar baz",
		"list x",
		"list list",
		"LIST",
		"help x",
		"file",
		"file 1 bob",
		"file 0 bob x.txt",
		"file 01 bob x.txt",
		"file 1 b/ob x.txt",
		"file x bob x.txt",
		"quit now",
	}
	for _, in := range bad {
		alice.send(t, in)
		alice.out.waitLine(t, "incorrect user input format", timeout)
	}
	// Nothing went to the server (its next line is the list request) nor to
	// bob (his next line is the message below).
	syncList(t, srv, alice, "alice bob carol")
	alice.tell(t, srv, bob, "after")
}

// Text and list limits: text up to 65,536 bytes, N from 1 to 1024; lines of
// any length are read.
func TestMsgLimits(t *testing.T) {
	t.Parallel()
	srv, alice, bob, _ := trio(t)
	// 65,536 bytes of text (with multi-byte characters) is delivered whole.
	text := strings.Repeat("é", 30000) + strings.Repeat("x", 65536-60000)
	alice.send(t, "msg 1 bob "+text)
	srv.out.waitLine(t, "msg: alice", timeout)
	bob.out.waitLine(t, "msg: alice: "+text, timeout)
	// One byte more is refused locally.
	alice.send(t, "msg 1 bob "+text+"y")
	alice.out.waitLine(t, "incorrect user input format", timeout)

	// 1024 names (all bob): delivered once.
	alice.send(t, "msg 1024 "+strings.Repeat("bob ", 1024)+"many")
	srv.out.waitLine(t, "msg: alice", timeout)
	bob.out.waitLine(t, "msg: alice: many", timeout)
	// 1025: refused locally.
	alice.send(t, "msg 1025 "+strings.Repeat("bob ", 1025)+"too many")
	alice.out.waitLine(t, "incorrect user input format", timeout)

	// 1024 names, 1023 of them missing: 1023 lines in order.
	var names []string
	want := []string{"msg: alice"}
	for i := 1; i < 1024; i++ {
		n := fmt.Sprintf("u%04d", 1024-i)
		names = append(names, n)
		want = append(want, "msg: alice to non-existent user "+n)
	}
	alice.send(t, "msg 1024 "+strings.Join(names, " ")+" bob last")
	srv.out.waitLines(t, timeout, want...)
	bob.out.waitLine(t, "msg: alice: last", timeout)

	// A 1 MiB line of garbage is read and refused.
	alice.send(t, "x"+strings.Repeat("garbage ", 1<<17))
	alice.out.waitLine(t, "incorrect user input format", timeout)
	syncList(t, srv, alice, "alice bob carol")
	syncList(t, srv, bob, "alice bob carol")
}

// Messages from one sender to one recipient arrive in the order sent.
func TestMsgOrder(t *testing.T) {
	t.Parallel()
	srv, alice, bob, carol := trio(t)
	const n = 300
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "msg 2 bob carol message %d\n", i)
	}
	alice.write(t, []byte(in.String()))
	for i := range n {
		srv.out.waitLine(t, "msg: alice", timeout)
		bob.out.waitLine(t, fmt.Sprintf("msg: alice: message %d", i), timeout)
	}
	for i := range n {
		carol.out.waitLine(t, fmt.Sprintf("msg: alice: message %d", i), timeout)
	}
}

// help prints every command of PROTOCOL.md section 5 with its format on
// stdout.
func TestHelpCommand(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice")
	alice.send(t, "help")
	alice.send(t, "list")
	srv.out.waitLine(t, "request_users_list: alice", timeout)
	help := alice.out.skipTo(t, "list: alice", timeout)
	if len(help) == 0 {
		t.Fatalf("help printed nothing on stdout\n%s", alice.dump())
	}
	all := strings.Join(help, "\n")
	missing, err := testbin.MissingFromHelp(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("the help does not name these commands of PROTOCOL.md section 5 with their format: %s\n%s", quoteAll(missing), all)
	}
	// help changes nothing: the same text again.
	alice.send(t, "  help\r")
	alice.send(t, "list")
	srv.out.waitLine(t, "request_users_list: alice", timeout)
	again := alice.out.skipTo(t, "list: alice", timeout)
	if strings.Join(again, "\n") != all {
		t.Errorf("second help differs:\n%s\nvs\n%s", strings.Join(again, "\n"), all)
	}
	alice.quit(t, srv)
}
