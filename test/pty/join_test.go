package ptytest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal/termtest"
)

// Right after joining, before the user has run list, Tab completes the
// names of those online (issue 23 item 9). The client learns them from the
// online extension: the server prints only the joins (no
// request_users_list: alice), the client prints no list: line nor any
// notice, and bob, a contract client, gets not a byte of it: the first
// frame he reads is alice's message.
func TestTabCompletesNamesOnlineAtJoin(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := dialJoin(t, srv, "bob")
	alice := startPTY(t, env(term, ""), args(srv.port, "alice")...)
	alice.waitInput("alice", "")
	alice.typeKeys("msg 1 b\t")
	v := alice.waitInput("alice", "msg 1 bob ")
	if i := slices.IndexFunc(v.Transcript, func(l string) bool { return !isHint(l) && l != "" && !strings.HasPrefix(l, "alice>") }); i >= 0 {
		t.Fatalf("row %q besides the hint:\n%s", v.Transcript[i], alice.scr)
	}
	alice.typeKeys("hi" + termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice hi")
	srv.Out.WaitLine(t, "msg: alice", timeout)
	if got, want := srv.Out.Snapshot(), []string{"join: bob", "join: alice", "msg: alice"}; !slices.Equal(got, want) {
		t.Fatalf("server stdout %q, want %q", got, want)
	}
	quit(t, srv, alice)
}

// With --join-notices, a join that arrives as the client joins is shown
// below the hint, never above it (issue 23 item 8).
func TestJoinNoticeAfterHint(t *testing.T) {
	t.Parallel()
	fake := newFakeServer(t)
	alice := startPTY(t, env(term, ""), args(fake.port, "alice", "--join-notices")...)
	var conn *chattest.Conn
	select {
	case c := <-fake.conns:
		conn = newRaw(t, c)
	case <-time.After(timeout):
		t.Fatalf("no connection after %v", timeout)
	}
	if h, _ := conn.Frame(); h.Type != protocol.ExtHello {
		t.Fatalf("first frame %s, want ext_hello", h.Name)
	}
	conn.Write(protocol.AppendExtHello(nil, []string{protocol.FeaturePresence}))
	conn.Expect(protocol.Join, "alice")
	conn.Write(protocol.AppendPresence(nil, protocol.PresenceJoined, "carol")) // within the join grace
	v := alice.waitScreen("the hint and the notice", func(v termtest.View) bool {
		return v.Contains("client: carol joined") && slices.ContainsFunc(v.Transcript, isHint) && v.CursorRow == "alice>"
	})
	hint := slices.IndexFunc(v.Transcript, isHint)
	notice := slices.Index(v.Transcript, "client: carol joined")
	if hint > notice {
		t.Fatalf("the notice (row %d) comes before the hint (row %d):\n%s", notice, hint, alice.scr)
	}
	alice.typeKeys(termtest.CtrlD)
	expectLeft(t, alice, conn)
}

// isHint reports whether a row is the hint shown once the join stands.
func isHint(row string) bool { return strings.HasPrefix(row, "Type help") }
