package cluster

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// resumeAfterFlood: bob (on nodes[0], asking for cursor frames) reads
// one message of alice's (on nodes[2]); nodes[0] is killed; alice sends
// him total messages of size bytes; bob resumes on nodes[1] with his
// cursor. Whatever resumed says he missed, the rest must come once, in
// order, the last included (delivered + missed == sent). It returns the
// count resumed gave. kept, if not nil, is called once nodes[2] has
// relayed (and kept) alice's messages, before the resume.
func resumeAfterFlood(t *testing.T, nodes []*node, total, size int, kept func()) int {
	t.Helper()
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	bob, token := joinResumable(t, n1, "bob", protocol.FeatureCursor)
	alice := join(t, n3, "alice")
	alice.waitList(usersList("alice", "bob"))
	alice.Send("first", "bob")
	cursor := bob.ExpectType(protocol.Cursor)
	bob.Expect(protocol.ForwardMessage, "1 alice first")

	n1.Kill()
	text := func(i int) string { return fmt.Sprintf("m%02d ", i) + strings.Repeat("x", size) }
	for i := 1; i <= total; i++ {
		alice.Send(text(i), "bob")
	}
	alice.List() // n3 has relayed (and kept) them all once it answers this
	if kept != nil {
		kept()
	}

	c := dial(t, n2, "bob")
	c.Write(protocol.AppendResumeAt(protocol.AppendExtHello(nil, []string{protocol.FeatureResume, protocol.FeatureCursor}), "bob", token, 1, 1, cursor))
	c.Expect(protocol.ExtHello, protocol.FeatureResume+" "+protocol.FeatureCursor)
	missed, err := strconv.Atoi(string(c.ExpectType(protocol.Resumed)))
	if err != nil {
		t.Fatal(err)
	}
	for i := missed + 1; i <= total; i++ {
		h, p := c.Frame()
		for h.Type == protocol.Cursor {
			h, p = c.Frame()
		}
		if h.Type != protocol.ForwardMessage || string(p) != "1 alice "+text(i) {
			t.Fatalf("after resumed %d: got %s %.20q, want message %d", missed, h.Name, p, i)
		}
	}
	t.Logf("missed %d, delivered %d of %d", missed, total-missed, total)
	return missed
}

// movedMissed matches a node's log line for a session it took over, with
// the frames the origins (and itself) had let go of.
var movedMissed = regexp.MustCompile(`msg="session moved here".* missed=(\d+)`)

// TestResumeBufferBoundsOrigins: with --resume-buffer 10000 on every
// node, n3 keeps for bob (on n1) at most 10,000 bytes of what alice sends
// him (chat_cluster_retained_bytes), not the 1 MiB it kept whatever the
// flag said: of 30 messages of 1,000 bytes sent while n1 is dead, n3
// answers n2's replay request with the 21 it let go of (a frame is the
// message and its header: 9 fit in 10,000 bytes, 10 would not), and bob
// is told he missed them and gets the other 9 once, in order.
func TestResumeBufferBoundsOrigins(t *testing.T) {
	nodes := startCluster(t, 3, "--resume-buffer", "10000")
	n2, n3 := nodes[1], nodes[2]
	missed := resumeAfterFlood(t, nodes, 30, 1000, func() {
		if b := n3.metric(t, "chat_cluster_retained_bytes"); b <= 0 || b > 10000 {
			t.Errorf("n3 keeps %v bytes for bob, want some, at most 10,000", b)
		}
	})
	l := n2.Errs.WaitMatch(t, movedMissed, timeout)
	if l[1] != "21" {
		t.Errorf("the origins let go of %s frames, want 21 (n2: %s)", l[1], l[0])
	}
	if missed != 21 {
		t.Fatalf("resumed %d, want the 21 n3 let go of", missed)
	}
}
