package cluster

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// gochatBin is the terminal client, built by TestMain.
var gochatBin string

// startResumeClient starts the terminal client as name, asking for
// resume, with the chat addresses of nodes (in order) in -a.
func startResumeClient(t *testing.T, name string, nodes ...*node) *testbin.Proc {
	t.Helper()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr()
	}
	cmd := exec.Command(gochatBin, "-a", strings.Join(addrs, ","), "-u", name, "--resume")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	return startProc(t, "client "+name, gochatBin, cmd.Args[1:]...)
}

// resumedOn matches the client's stderr line for a resume.
var resumedOn = regexp.MustCompile(`^client: connection lost; resumed on (\S+) after (\S+)$`)

// TestResumeAfterNodeKilled: bob's client is on n1 and asked for resume;
// n1 is killed with SIGKILL. The client resumes on n2 (the next address
// of its -a) under his name within seconds, without waiting for n1's
// lease to expire (20 s); alice on n3 sees him in the list throughout and
// can message him on n2 afterwards; no node prints a second join: bob, and
// bob, quitting, gets one disconnected: bob on n2.
func TestResumeAfterNodeKilled(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	bob := startResumeClient(t, "bob", n1, n2, n3)
	n1.Out.WaitLine(t, "join: bob", timeout)
	alice := join(t, n3, "alice")
	alice.waitList(usersList("alice", "bob"))
	alice.Send("before", "bob")
	bob.Out.WaitLine(t, "msg: alice: before", timeout)

	killed := time.Now()
	n1.Kill()
	l := bob.Errs.WaitMatch(t, resumedOn, timeout)
	took := time.Since(killed)
	if l[1] != n2.addr() {
		t.Fatalf("bob resumed on %s, want n2 (%s)", l[1], n2.addr())
	}
	t.Logf("bob resumed on n2 %v after the kill (client: %s after the loss)", took.Round(time.Millisecond), l[2])
	if took >= 20*time.Second {
		t.Errorf("the resume took %v: as long as the dead node's lease", took)
	}
	n2.Errs.Wait(t, "n2 taking the session", 1, timeout, func(s string) bool { return strings.Contains(s, `msg="session moved here"`) })
	// Listed at once, before n3 has even seen the move.
	if got := alice.List(); got != usersList("alice", "bob") {
		t.Errorf("alice's list after the resume: %q, want alice and bob", got)
	}
	n3.Errs.Wait(t, "n3 seeing the move", 1, timeout, func(s string) bool { return strings.Contains(s, `msg="a session moved to another node"`) })
	alice.Send("after", "bob")
	bob.Out.WaitLine(t, "msg: alice: after", timeout)
	bob.Send(t, "msg 1 alice back")
	if _, p := alice.Frame(); string(p) != "1 bob back" {
		t.Errorf("alice got %q, want bob's message", p)
	}

	bob.Send(t, "quit")
	n2.Out.WaitLine(t, "disconnected: bob", timeout)
	alice.waitList(usersList("alice"))
	for _, n := range []*node{n2, n3} {
		for _, line := range n.Out.Snapshot() {
			if line == "join: bob" {
				t.Errorf("%s printed join: bob for the resume", n.name)
			}
		}
	}
	if c := n2.Out.Count(func(s string) bool { return s == "disconnected: bob" }); c != 1 {
		t.Errorf("n2 printed disconnected: bob %d times, want once", c)
	}
}

// joinResumable joins name on n with a raw connection that asks for
// resume, and returns it with the session's token.
func joinResumable(t *testing.T, n *node, name string) (*conn, protocol.Token) {
	t.Helper()
	c := dial(t, n, name)
	if got := c.Hello(protocol.FeatureResume); got != protocol.FeatureResume {
		t.Fatalf("%s: ext_hello accepted %q, want resume", name, got)
	}
	c.Join(name)
	token, _, err := protocol.ParseSession(c.ExpectType(protocol.Session))
	if err != nil {
		t.Fatal(err)
	}
	n.Out.WaitLine(t, "join: "+name, timeout)
	return c, token
}

// resumeOn resumes the session of name (token, n counted frames read) on
// node n with a new raw connection, and expects resumed <missed>.
func resumeOn(t *testing.T, n *node, name string, token protocol.Token, count uint64, missed string) *conn {
	t.Helper()
	c := dial(t, n, name)
	c.Write(protocol.AppendResume(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}), name, token, count))
	c.Expect(protocol.ExtHello, protocol.FeatureResume)
	c.Expect(protocol.Resumed, missed)
	return c
}

// TestResumeOnLiveOtherNode: bob, on n1 with a session granted resume,
// comes back through n2 while n1 runs on (a client whose first address
// failed it for a moment): n2 takes the session over at once; n1, seeing
// its record taken, closes bob's old connection without a line on
// stdout; alice on n3 reaches bob on n2 and lists him throughout; a
// resume with a wrong token is refused; bob's quit on n2 prints his one
// disconnected line there.
func TestResumeOnLiveOtherNode(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	old, token := joinResumable(t, n1, "bob")
	alice := join(t, n3, "alice")
	alice.waitList(usersList("alice", "bob"))

	wrong := token
	wrong[0] ^= 1
	bad := dial(t, n2, "bob")
	bad.Write(protocol.AppendResume(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}), "bob", wrong, 0))
	bad.Expect(protocol.ExtHello, protocol.FeatureResume)
	bad.Expect(protocol.ResumeFailed, "")

	bob := resumeOn(t, n2, "bob", token, 0, "0")
	old.ExpectClosed()
	n3.Errs.Wait(t, "n3 seeing the move", 1, timeout, func(s string) bool { return strings.Contains(s, `msg="a session moved to another node"`) })
	if got := alice.List(); got != usersList("alice", "bob") {
		t.Errorf("alice's list after the move: %q", got)
	}
	alice.Send("hello", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice hello")
	bob.Send("hi", "alice")
	alice.Expect(protocol.ForwardMessage, "1 bob hi")
	bob.Write(protocol.AppendJoin(nil, protocol.Disconnect, "bob"))
	n2.Out.WaitLine(t, "disconnected: bob", timeout)
	alice.waitList(usersList("alice"))
	for _, n := range nodes {
		if c := n.Out.Count(func(s string) bool { return s == "disconnected: bob" }); n != n2 && c != 0 {
			t.Errorf("%s printed disconnected: bob", n.name)
		}
		if c := n.Out.Count(func(s string) bool { return s == "join: bob" }); n != n1 && c != 0 {
			t.Errorf("%s printed join: bob", n.name)
		}
	}
}

// TestAwayWhileNodeDead: bob's node n1 is killed and his client is slow
// to come back: once the others have found n1 silent (3.5 s), bob stays
// in alice's list and his name is not given to anyone else (his session
// may still be resumed, for its window); then he resumes on n2 and alice
// reaches him there.
func TestAwayWhileNodeDead(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	_, token := joinResumable(t, n1, "bob")
	alice := join(t, n3, "alice")
	alice.waitList(usersList("alice", "bob"))
	n1.Kill()
	n3.Errs.Wait(t, "n3 finding n1 silent", 1, timeout, func(s string) bool {
		return strings.Contains(s, `msg="node silent`) && strings.Contains(s, "peer=n1")
	})
	if got := alice.List(); got != usersList("alice", "bob") {
		t.Errorf("alice's list with bob's node dead: %q, want bob in it", got)
	}
	other := dial(t, n2, "bob")
	other.Join("bob")
	other.Expect(protocol.ErrUsernameUnavailable, "")
	bob := resumeOn(t, n2, "bob", token, 0, "0")
	n3.Errs.Wait(t, "n3 seeing the move", 1, timeout, func(s string) bool { return strings.Contains(s, `msg="a session moved to another node"`) })
	alice.Send("hello", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice hello")
}
