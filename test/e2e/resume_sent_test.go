package e2e

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/gochat/chat/internal/chattest"
)

// What the client sends across a lost connection (issue 22, the taken
// feature): the real client and server, with a proxy between them
// (chattest.Proxy's SwallowAfter) that can stop forwarding what the client writes
// (the writes succeed into a socket nobody reads, as on a link that died
// without a word) and can cut a frame in the middle.

var sentAgainLine = regexp.MustCompile(`^client: sent again (\d+) lines you typed that had not reached the server$`)

// TestResumeSendsAgain: bob's connection goes through a proxy that stops
// forwarding what he writes, once just after the head of a message (the
// server reads half a frame) and once at a frame's edge; bob types on,
// his writes succeed into the proxy, and then the proxy cuts the
// connection. After each resume every line bob typed reaches alice once,
// in order (her stdout is checked line by line), the server prints one
// msg line per message, and bob's stderr says how many lines he sent
// again. Without the taken feature the lines typed into the dead
// connection were lost without a word (alice never got m6).
func TestResumeSendsAgain(t *testing.T) {
	skipShort(t)
	t.Parallel()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice")
	proxy := chattest.NewProxy(t, srv.addr(), 0)
	bob := startClient(t, proxy.Port(), "bob", "--resume")
	srv.out.waitLine(t, "join: bob", timeout)

	next := 1
	typeLines := func(n int) string {
		last := ""
		for range n {
			last = fmt.Sprintf("m%d", next)
			bob.send(t, "msg 1 alice "+last)
			next++
		}
		return last
	}
	arrived := 0
	expectArrived := func() {
		t.Helper()
		for ; arrived < next-1; arrived++ {
			alice.out.waitLine(t, fmt.Sprintf("msg: bob: m%d", arrived+1), timeout)
			srv.out.waitLine(t, "msg: bob", timeout)
		}
	}

	typeLines(5)
	expectArrived()
	for i, keep := range []int{len("send_message 12 1 "), 0} {
		proxy.SwallowAfter(keep)
		last := typeLines(5)
		proxy.WaitSwallowed(t, last) // bob's writes all went into the proxy
		proxy.Cut()
		expectArrived() // all five, once, in order
		l := bob.errs.waitMatches(t, sentAgainLine, i+1, timeout)[i]
		if m := sentAgainLine.FindStringSubmatch(l); m[1] != "5" {
			t.Errorf("round %d: %q, want 5 lines sent again", i+1, l)
		}
	}
	typeLines(1)
	expectArrived()
	bob.quit(t, srv) // the next server line is bob's one disconnected:
	if n := bob.errs.countMatch(regexp.MustCompile(`resumed on`)); n != 2 {
		t.Errorf("bob resumed %d times, want 2", n)
	}
	if n := bob.errs.countMatch(regexp.MustCompile(`may not have reached|may arrive twice|missed`)); n != 0 {
		t.Errorf("bob was told of lost or doubled lines, %d times:\n%s", n, bob.dump())
	}
	alice.quit(t, srv)
}
