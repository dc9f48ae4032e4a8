package cluster

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// sentAgainTwice matches the client's stderr line after a resume on a
// node that does not know how many of its lines the dead node took.
var sentAgainTwice = regexp.MustCompile(`^client: sent again (\d+) lines you typed that the server that failed may not have taken: some may arrive twice: (.*)$`)

// TestResumeSendsAgainAfterNodeKilled: bob's client reaches n1 through a
// proxy that stops forwarding what he writes; he types five lines more
// (his writes succeed into the proxy), and n1 is killed with SIGKILL. The
// client resumes on n2, which does not know n1's count of bob's frames:
// it says so (resumed ~0), and the client sends again the lines n1 had not
// confirmed. alice on n2 gets all of bob's lines once, in order: the five
// n1 confirmed are not sent again, the five it never read are; bob's
// stderr says five were sent again and may arrive twice. Without the
// taken feature the five were lost without a word.
func TestResumeSendsAgainAfterNodeKilled(t *testing.T) {
	n1, n2, n3 := startThree(t)
	proxy := chattest.NewProxy(t, n1.addr(), 0)
	bob := startProc(t, "client bob", gochatBin, "-a", strings.Join([]string{proxy.Addr(), n2.addr(), n3.addr()}, ","), "-u", "bob", "--resume")
	n1.Out.WaitLine(t, "join: bob", timeout)
	alice := join(t, n2, "alice")
	alice.waitList(usersList("alice", "bob"))

	expect := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			h, p := alice.Frame()
			if h.Type != protocol.ForwardMessage || string(p) != fmt.Sprintf("1 bob m%d", i) {
				t.Fatalf("alice got %s %q, want m%d from bob", h.Name, p, i)
			}
		}
	}
	for i := 1; i <= 5; i++ {
		bob.Send(t, fmt.Sprintf("msg 1 alice m%d", i))
	}
	expect(1, 5)
	// n1 told bob it took the five (received 5), before the link dies.
	proxy.WaitToClient(t, string(protocol.AppendCount(nil, protocol.Received, 5)))
	proxy.SwallowAfter(0)
	for i := 6; i <= 10; i++ {
		bob.Send(t, fmt.Sprintf("msg 1 alice m%d", i))
	}
	proxy.WaitSwallowed(t, "m10")
	n1.Kill()
	l := bob.Errs.WaitMatch(t, resumedOn, timeout)
	if l[1] != n2.addr() {
		t.Fatalf("bob resumed on %s, want n2 (%s)", l[1], n2.addr())
	}
	expect(6, 10)
	bob.Send(t, "msg 1 alice m11")
	expect(11, 11)
	want := `to alice: "m6"; to alice: "m7"; to alice: "m8"; to alice: "m9"; to alice: "m10"`
	if m := bob.Errs.WaitMatch(t, sentAgainTwice, timeout); m[1] != "5" || m[2] != want {
		t.Errorf("bob sent again %s lines (%s), want 5 (%s)", m[1], m[2], want)
	}
	bob.Send(t, "quit")
	n2.Out.WaitLine(t, "disconnected: bob", timeout)
	if c := n2.Out.Count(func(s string) bool { return s == "msg: bob" }); c != 6 {
		t.Errorf("n2 printed msg: bob %d times, want 6 (m6 to m11)", c)
	}
}

// TestResumeHandedOver: bob, on n1 with a session granted resume and
// taken, comes back through n2 while n1 runs (his old connection still
// open): n2 asks n1 for its count of bob's frames taken and says it
// exactly (resumed 0 3, not ~0); n1 drops what the old connection still
// sends (the client sends it again on n2), so alice gets m5 from the new
// connection and never m4 from the old.
func TestResumeHandedOver(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	bob, token := joinResumable(t, n1, "bob", protocol.FeatureTaken)
	alice := join(t, n2, "alice")
	alice.waitList(usersList("alice", "bob"))
	send := func(c *conn, text string) {
		c.Write(protocol.AppendMessage(nil, protocol.SendMessage, []string{"alice"}, []byte(text)))
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		send(bob, m)
		alice.Expect(protocol.ForwardMessage, "1 bob "+m)
	}

	c := dial(t, n2, "bob again")
	features := []string{protocol.FeatureResume, protocol.FeatureTaken}
	c.Write(protocol.AppendResume(protocol.AppendExtHello(nil, features), "bob", token, 0))
	c.Expect(protocol.ExtHello, strings.Join(features, " "))
	c.Expect(protocol.Resumed, "0 3")
	send(bob, "m4") // n1 handed the session over: dropped
	send(c, "m5")
	alice.Expect(protocol.ForwardMessage, "1 bob m5")
	n1.Errs.Wait(t, "n1 seeing the move", 1, timeout, func(s string) bool { return strings.Contains(s, `msg="session moved to another node"`) })
	send(c, "m6")
	alice.Expect(protocol.ForwardMessage, "1 bob m6")
	if got := n1.Out.Count(func(s string) bool { return s == "msg: bob" }); got != 3 {
		t.Errorf("n1 printed msg: bob %d times, want 3", got)
	}
}
