package cluster

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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

	c := dialResumeAt(t, n2, "bob", token, 1, 1, cursor)
	missed, err := strconv.Atoi(string(c.ExpectType(protocol.Resumed)))
	if err != nil {
		t.Fatal(err)
	}
	for i := missed + 1; i <= total; i++ {
		if h, p := c.counted(); h.Type != protocol.ForwardMessage || string(p) != "1 alice "+text(i) {
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

// TestAcksTrimOrigins: bob (on n1, with cursor frames) reads 30 messages
// of 1,000 bytes from alice (on n3) and acknowledges 20 of them: n1 tells
// n3 (in its next report), and n3 lets go of those 20 and keeps the 10
// unacknowledged (chat_cluster_retained_bytes falls to a third; it kept
// all 30 for the window before). Then n1 is killed, and bob resumes on n2
// at his acknowledged position: n3 still has the 10 after it, and bob
// gets them once, in order, none missed.
func TestAcksTrimOrigins(t *testing.T) {
	n1, n2, n3 := startThree(t)
	bob, token := joinResumable(t, n1, "bob", protocol.FeatureCursor)
	alice := join(t, n3, "alice")
	alice.waitList(usersList("alice", "bob"))
	const total, acked = 30, 20
	text := func(i int) string { return fmt.Sprintf("m%02d ", i) + strings.Repeat("x", 1000) }
	for i := 1; i <= total; i++ {
		alice.Send(text(i), "bob")
	}
	cursor := bob.ExpectType(protocol.Cursor)
	for i := 1; i <= total; i++ {
		bob.Expect(protocol.ForwardMessage, "1 alice "+text(i))
	}
	all := n3.metric(t, "chat_cluster_retained_bytes")
	if all < total*1000 {
		t.Fatalf("n3 keeps %v bytes for bob, want the %d messages'", all, total)
	}
	bob.Write(protocol.AppendCount(nil, protocol.Received, acked))
	want := all * (total - acked) / total
	deadline := time.Now().Add(timeout)
	for got := all; got != want; got = n3.metric(t, "chat_cluster_retained_bytes") {
		if time.Now().After(deadline) {
			t.Fatalf("n3 keeps %v bytes for bob, want %v: the 20 acknowledged let go of", got, want)
		}
		time.Sleep(20 * time.Millisecond) // a metric: nothing to wait on
	}

	n1.Kill()
	c := resumeAt(t, n2, "bob", token, acked, acked, cursor, "0")
	for i := acked + 1; i <= total; i++ {
		if h, p := c.counted(); h.Type != protocol.ForwardMessage || string(p) != "1 alice "+text(i) {
			t.Fatalf("after the resume: got %s %.20q, want message %d", h.Name, p, i)
		}
	}
}
