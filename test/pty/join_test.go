package ptytest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal/termtest"
)

// With --join-notices, a join that arrives as the client joins is shown
// below the hint, never above it (issue 23 item 8).
func TestJoinNoticeAfterHint(t *testing.T) {
	t.Parallel()
	fake := newFakeServer(t)
	alice := startPTY(t, env(term, ""), args(fake.port, "alice", "--join-notices")...)
	var conn *rawConn
	select {
	case c := <-fake.conns:
		conn = newRaw(t, c)
	case <-time.After(timeout):
		t.Fatalf("no connection after %v", timeout)
	}
	if typ, _ := conn.readFrame(); typ != "ext_hello" {
		t.Fatalf("first frame %s, want ext_hello", typ)
	}
	conn.write(protocol.AppendExtHello(nil, []string{protocol.FeaturePresence}))
	conn.expectFrame("join", "alice")
	conn.write(protocol.AppendPresence(nil, protocol.PresenceJoined, "carol")) // within the join grace
	v := alice.waitScreen("the hint and the notice", func(v termtest.View) bool {
		return v.Contains("client: carol joined") && slices.ContainsFunc(v.Transcript, isHint) && v.CursorRow == "alice>"
	})
	hint := slices.IndexFunc(v.Transcript, isHint)
	notice := slices.Index(v.Transcript, "client: carol joined")
	if hint > notice {
		t.Fatalf("the notice (row %d) comes before the hint (row %d):\n%s", notice, hint, alice.scr)
	}
	alice.typeKeys(ctrlD)
	conn.expectFrame("disconnect", "alice")
	conn.c.Close()
	if code := alice.waitExit(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// isHint reports whether a row is the hint shown once the join stands.
func isHint(row string) bool { return strings.HasPrefix(row, "Type help") }
