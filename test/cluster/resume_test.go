package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// gochatBin is the terminal client, built by TestMain.
var gochatBin string

// startResumeClient starts the terminal client as name, asking for
// resume, with the chat addresses of nodes (in order) in -a, and waits
// for its join line on the first.
func startResumeClient(t *testing.T, name string, nodes ...*node) *testbin.Proc {
	t.Helper()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr()
	}
	cmd := exec.Command(gochatBin, "-a", strings.Join(addrs, ","), "-u", name, "--resume")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	p := startProc(t, "client "+name, gochatBin, cmd.Args[1:]...)
	nodes[0].Out.WaitLine(t, "join: "+name, timeout)
	return p
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
	n1, n2, n3 := startThree(t)
	bob := startResumeClient(t, "bob", n1, n2, n3)
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
// resume (and the features more), and returns it with the session's token.
func joinResumable(t *testing.T, n *node, name string, more ...string) (*conn, protocol.Token) {
	t.Helper()
	c := dial(t, n, name)
	want := append([]string{protocol.FeatureResume}, more...)
	if got := c.Hello(want...); got != strings.Join(want, " ") {
		t.Fatalf("%s: ext_hello accepted %q, want %q", name, got, want)
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

// resumeAt resumes the session of name on node n with a new raw
// connection asking for cursors, the client having read count counted
// frames, j of them after its last cursor (nil: none), and expects
// resumed <missed>.
func resumeAt(t *testing.T, n *node, name string, token protocol.Token, count, j uint64, cursor []byte, missed string) *conn {
	t.Helper()
	c := dialResumeAt(t, n, name, token, count, j, cursor)
	c.Expect(protocol.Resumed, missed)
	return c
}

// dialResumeAt is resumeAt up to resumed, which it leaves unread.
func dialResumeAt(t *testing.T, n *node, name string, token protocol.Token, count, j uint64, cursor []byte) *conn {
	t.Helper()
	c := dial(t, n, name)
	c.Write(protocol.AppendResumeAt(protocol.AppendExtHello(nil, []string{protocol.FeatureResume, protocol.FeatureCursor}), name, token, count, j, cursor))
	c.Expect(protocol.ExtHello, protocol.FeatureResume+" "+protocol.FeatureCursor)
	return c
}

// counted returns c's next frame that is not a cursor.
func (c *conn) counted() (protocol.Header, []byte) {
	h, p := c.Frame()
	for h.Type == protocol.Cursor {
		h, p = c.Frame()
	}
	return h, p
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
	alice.Tell(bob.Conn, "hello")
	bob.Tell(alice.Conn, "hi")
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
	n1, n2, n3 := startThree(t)
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
	alice.Tell(bob.Conn, "hello")
}

// sender sends name's numbered messages (name1, name2, ...) to bob every
// 10 ms from its own goroutine until stopped, and counts them.
type sender struct {
	c    *conn
	stop chan struct{}
	done chan struct{}
	sent atomic.Int64
	err  error
}

func startSender(c *conn, to string) *sender {
	s := &sender{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = c.sendTicking(to, s.stop, 1, func(i int) string { return fmt.Sprint(c.Name, i) }, func(i int) { s.sent.Store(int64(i)) })
	}()
	return s
}

func (s *sender) finish(t *testing.T) int {
	t.Helper()
	close(s.stop)
	<-s.done
	if s.err != nil {
		t.Fatalf("%s: %v", s.c.Name, s.err)
	}
	return int(s.sent.Load())
}

// missedLine matches the client's stderr line for frames missed.
var missedLine = regexp.MustCompile(`^client: missed (\d+) messages`)

// TestResumeNothingLostOnKill: alice (on n3) and carol (on n2) send bob
// (on n1, his client asking for resume) 100 messages a second each; n1
// is killed with SIGKILL. Bob resumes on n2, and every message either
// reaches him once and in its sender's order, or is counted in the
// missed N messages his client prints: for each sender, nothing twice,
// nothing out of order, and in all delivered + missed == sent. Before
// origin retention, the messages in flight to n1 and sent to bob until
// the cluster saw the move were lost without a word.
func TestResumeNothingLostOnKill(t *testing.T) {
	n1, n2, n3 := startThree(t)
	bob := startResumeClient(t, "bob", n1, n2, n3)
	alice := join(t, n3, "alice")
	carol := join(t, n2, "carol")
	alice.waitList(usersList("alice", "bob", "carol"))
	carol.waitList(usersList("alice", "bob", "carol"))
	senders := []*sender{startSender(alice, "bob"), startSender(carol, "bob")}
	bob.Out.WaitLine(t, "msg: alice: alice50", timeout)
	n1.Kill()
	bob.Errs.WaitMatch(t, resumedOn, timeout)
	// Go on sending a second after the resume.
	bob.Out.WaitLine(t, fmt.Sprintf("msg: alice: alice%d", senders[0].sent.Load()+100), timeout)
	sent := 0
	for _, s := range senders {
		sent += s.finish(t)
	}
	missed := 0
	for _, l := range bob.Errs.Snapshot() {
		if m := missedLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			missed += n
		}
	}
	delivered := func() int {
		return bob.Out.Count(func(s string) bool { return strings.HasPrefix(s, "msg: ") })
	}
	deadline := time.Now().Add(timeout)
	for delivered()+missed < sent && time.Now().Before(deadline) {
		bob.Out.Wait(t, "more messages", delivered()+1, time.Until(deadline), func(s string) bool { return strings.HasPrefix(s, "msg: ") })
	}
	last := map[string]int{}
	for _, l := range bob.Out.Snapshot() {
		var from string
		var i int
		if _, err := fmt.Sscanf(l, "msg: %s ", &from); err != nil {
			continue
		}
		from = strings.TrimSuffix(from, ":")
		if _, err := fmt.Sscanf(strings.TrimPrefix(l, "msg: "+from+": "+from), "%d", &i); err != nil {
			t.Fatalf("bob printed %q", l)
		}
		if i <= last[from] {
			t.Errorf("bob got %s%d after %s%d: twice or out of order", from, i, from, last[from])
		}
		last[from] = i
	}
	t.Logf("sent %d, delivered %d, missed %d", sent, delivered(), missed)
	if got := delivered() + missed; got != sent {
		t.Errorf("delivered %d + missed %d = %d, want the %d sent", delivered(), missed, got, sent)
	}
}

// TestResumeMissedCounted: bob's node n1 is killed while alice (on n3)
// sends him 30 messages of 60,000 bytes, 1.8 MB, more than a node keeps
// for one user (--resume-buffer, 1 MiB by default). Bob resumes on n2
// with his cursor: resumed says exactly how many n3 let go of, and the
// rest come once, in order, the last included: delivered + missed ==
// sent.
func TestResumeMissedCounted(t *testing.T) {
	missed := resumeAfterFlood(t, startCluster(t, 3), 30, 60000, nil)
	if missed <= 0 || missed >= 30 {
		t.Fatalf("resumed %d: want some but not all of the 30 messages missed", missed)
	}
}

// TestResumeCountsDeadNodesOwn: dave, on bob's node n1, sends bob six
// messages; bob reads the first only (and one from alice on n3) when n1 is
// killed. Those five died with n1, which alone had them: bob, resuming on
// n2, is told he missed 5, from what n1 last reported it had originated
// for him (every 200 ms; the test waits for the report). Before, they were
// lost without a word.
func TestResumeCountsDeadNodesOwn(t *testing.T) {
	n1, n2, n3 := startThree(t)
	bob, token := joinResumable(t, n1, "bob", protocol.FeatureCursor)
	dave := join(t, n1, "dave")
	alice := join(t, n3, "alice")
	alice.waitList(usersList("alice", "bob", "dave"))
	dave.Tell(bob.Conn, "d1")
	alice.Send("a1", "bob")
	cursor := bob.ExpectType(protocol.Cursor)
	bob.Expect(protocol.ForwardMessage, "1 alice a1")
	for i := 2; i <= 6; i++ {
		dave.Send(fmt.Sprint("d", i), "bob")
	}
	dave.List() // n1 has queued all five for bob once it answers this
	deadline := time.Now().Add(timeout)
	for n2.metric(t, "chat_cluster_originated_reported_total", `peer="n1"`) < 6 {
		if time.Now().After(deadline) {
			t.Fatal("n2 never heard n1 report the six frames it originated for bob")
		}
		time.Sleep(50 * time.Millisecond) // a metric: nothing to wait on
	}
	n1.Kill()
	c := resumeAt(t, n2, "bob", token, 2, 1, cursor, "5")
	alice.Send("a2", "bob")
	if h, p := c.counted(); h.Type != protocol.ForwardMessage || string(p) != "1 alice a2" {
		t.Fatalf("after the resume: got %s %q, want alice's a2", h.Name, p)
	}
}

// TestResumeCountsConfirmedOwn: bob and carol are on n1, with sessions
// granted resume (bob's counts his frames: taken; carol's has cursors).
// carol reads nothing more; bob sends her ten messages and is told n1
// took all ten (received 10), and n1 is killed at that moment. The ten
// died with n1, which alone had them; carol, resuming on n2, is told she
// missed all ten. n1 tells bob a count only once the other nodes have
// acknowledged its report of what it originated for carol after it
// (commit.go): before, n1 told bob at once, reported every 200 ms, and
// carol, resuming, was told she missed what n1 had last reported (none):
// ten messages bob would not send again, lost without a word.
func TestResumeCountsConfirmedOwn(t *testing.T) {
	n1, n2, _ := startThree(t)
	bob, _ := joinResumable(t, n1, "bob", protocol.FeatureTaken)
	_, token := joinResumable(t, n1, "carol", protocol.FeatureCursor) // open, unread
	alice := join(t, n2, "alice")
	alice.waitList(usersList("alice", "bob", "carol"))
	for i := 1; i <= 10; i++ {
		bob.Send(fmt.Sprint("m", i), "carol")
	}
	for {
		h, p := bob.Frame()
		if h.Type == protocol.Received && string(p) == "10" {
			break
		}
		if h.Type != protocol.Received {
			t.Fatalf("bob got %s %q, want received", h.Name, p)
		}
	}
	n1.Kill()
	resumeAt(t, n2, "carol", token, 0, 0, nil, "10")
}

// TestResumeReleasedByLiveNode: bob, on n1 with cursors, reads nothing
// while dave, on n1 too, sends him five messages; bob comes back through
// n2 while n1 runs. n1 releases the session and sends n2 the five it
// kept for him: bob is told he missed none and gets them once, in order;
// dave's next message, sent while the record may still name n1, reaches
// bob on n2. Before, the five were dropped with the old session and
// counted missed (resumed 5), and what dave sent between n1's last report
// and the move was lost without a word.
func TestResumeReleasedByLiveNode(t *testing.T) {
	n1, n2, _ := startThree(t)
	_, token := joinResumable(t, n1, "bob", protocol.FeatureCursor) // open, unread
	dave := join(t, n1, "dave")
	alice := join(t, n2, "alice")
	alice.waitList(usersList("alice", "bob", "dave"))
	for i := 1; i <= 5; i++ {
		dave.Send(fmt.Sprint("d", i), "bob")
	}
	dave.List() // n1 has queued all five for bob once it answers this
	c := resumeAt(t, n2, "bob", token, 0, 0, nil, "0")
	next := func() string {
		t.Helper()
		h, p := c.counted()
		if h.Type != protocol.ForwardMessage {
			t.Fatalf("bob got %s %q, want a message", h.Name, p)
		}
		return string(p)
	}
	for i := 1; i <= 5; i++ {
		if got, want := next(), fmt.Sprint("1 dave d", i); got != want {
			t.Fatalf("bob got %q, want %q", got, want)
		}
	}
	dave.Send("d6", "bob")
	if got := next(); got != "1 dave d6" {
		t.Fatalf("bob got %q, want dave's d6", got)
	}
	n1.Errs.Wait(t, "n1 releasing bob's session", 1, timeout, func(s string) bool {
		return strings.Contains(s, `msg="released a session to another node"`) && strings.Contains(s, "sent=5")
	})
}
