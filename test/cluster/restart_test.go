package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// Origins restarted between a relay and a resume (issue 22, second part;
// docs/SESSIONS.md, "A node that restarted"). An origin keeps what it
// relayed to a remote user for a resume elsewhere; a restarted node (a new
// incarnation: --node and --cluster-dir the same, as an operator's
// restart or systemd's Restart=on-failure starts it) keeps nothing of its
// earlier one. The frames its earlier incarnation relayed and nobody
// delivered must be counted in the user's resumed, exactly.

// restartedSetup is the start of each case: bob on n1 (a raw connection
// granted resume, reading cursors), alice on n3; alice sends him sent
// messages a1, a2, ..., which all reach bob's connection (n3 relayed every
// one), and n3 is killed (SIGKILL) at once and started again with the same
// flags, a new incarnation that n1 and n2 have heard. It returns bob's
// connection, his token, the cursor he read before a1, and when n3 was
// killed.
func restartedSetup(t *testing.T, sent int) (n1, n2, n3 *node, bob *conn, token protocol.Token, cursor []byte, killed time.Time) {
	t.Helper()
	n1, n2, n3 = startThree(t)
	bob, token = joinResumable(t, n1, "bob", protocol.FeatureCursor)
	alice := join(t, n3, "alice")
	alice.waitList(usersList("alice", "bob"))
	for i := 1; i <= sent; i++ {
		alice.Send(fmt.Sprint("a", i), "bob")
	}
	cursor = bob.ExpectType(protocol.Cursor)
	for i := 1; i <= sent; i++ {
		bob.Expect(protocol.ForwardMessage, fmt.Sprint("1 alice a", i))
	}
	// At once: n3 reports its origin sequences every 200 ms, and most
	// of the time its last report did not cover all of them yet.
	n3.Kill()
	killed = time.Now()
	n3.restart(t)
	n3.Errs.Wait(t, "n3 taking over its earlier incarnation's lease", 1, timeout, func(s string) bool {
		return strings.Contains(s, `msg="took over the lease of an earlier incarnation"`)
	})
	for _, n := range []*node{n1, n2} {
		// Heard at start, then again as the new incarnation.
		n.Errs.Wait(t, n.name+" hearing n3's new incarnation", 2, timeout, func(s string) bool {
			return strings.Contains(s, `msg="node heard"`) && strings.Contains(s+" ", "peer=n3 ") && strings.Contains(s, "state=up")
		})
	}
	t.Logf("n3's new incarnation heard %v after the kill", time.Since(killed).Round(time.Millisecond))
	return n1, n2, n3, bob, token, cursor, killed
}

// rejoin joins name on n, again and again while the name is still held
// by the session of a node's earlier incarnation (its records are swept
// once the new incarnation holds the lease).
func rejoin(t *testing.T, n *node, name string) *conn {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, c := outcome(t, n, name)
		if r == "joined" {
			c.Name = name
			return c
		}
		if r != protocol.ErrUsernameUnavailable.String() || time.Now().After(deadline) {
			t.Fatalf("joining %s on %s: %s", name, n.name, r)
		}
		time.Sleep(200 * time.Millisecond) // nothing tells a client when a name is free
	}
}

// expectMessages reads from c, past cursor frames, alice's messages
// prefix1..prefixN and nothing else, then an answer to a list: nothing
// twice, nothing out of order, nothing more.
func expectMessages(t *testing.T, c *conn, prefix string, n int) {
	t.Helper()
	next := c.counted
	for i := 1; i <= n; i++ {
		if h, p := next(); h.Type != protocol.ForwardMessage || string(p) != fmt.Sprint("1 alice ", prefix, i) {
			t.Fatalf("bob got %s %q, want alice's %s%d", h.Name, p, prefix, i)
		}
	}
	c.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	if h, p := next(); h.Type != protocol.ResponseUsersList {
		t.Fatalf("bob got %s %q after alice's %s%d, want only the list", h.Name, p, prefix, n)
	}
}

// heardPositions waits until n has heard n1's positions of its sessions
// in n3's earlier incarnation, which n1 reports once it sees that
// incarnation go. It does not fail: the count that resumed gives is what
// the test asserts (before the report existed, it was too low).
func heardPositions(t *testing.T, n *node, killed time.Time) {
	t.Helper()
	heard := func(s string) bool {
		return strings.Contains(s, `msg="heard a node's positions in an origin that is gone"`) && strings.Contains(s+" ", "peer=n1 ") && strings.Contains(s, "origin=n3/")
	}
	if msg := chattest.Fails(t, func(tb testing.TB) {
		n.Errs.Wait(tb, n.name+" hearing n1's positions in n3's earlier incarnation", 1, timeout, heard)
	}); msg != "" {
		t.Logf("%s never heard n1's positions in n3's earlier incarnation", n.name)
		return
	}
	for _, l := range n.Errs.Snapshot() {
		if heard(l) {
			// The figure of docs/SESSIONS.md: how long after the
			// origin's death the user's node had reported.
			at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(strings.Fields(l)[0], "time="))
			if err == nil {
				t.Logf("%s heard n1's positions in n3's earlier incarnation %v after the kill", n.name, at.Sub(killed).Round(time.Millisecond))
			}
			break
		}
	}
}

// TestResumeAfterOriginRestarted: alice on n3 sends bob on n1 ten
// messages; bob's connection gets them all, but his client has read four
// (the others were in its socket when it went: it resumes with the
// position it read). n3 is killed and started again. Bob resumes with his
// cursor on another node: resumed must count the six that n3's earlier
// incarnation relayed and nobody will deliver (delivered + missed ==
// sent), whether n1 was killed first or still runs, and on the restarted
// n3 itself as on n2. Alice, back on the restarted n3, sends him five
// more: they come once, in order, and nothing else. Before n1 reported
// its positions in the dead origin, resumed said 0 in most runs (n3 died
// before its report of the burst).
func TestResumeAfterOriginRestarted(t *testing.T) {
	const sent, read = 10, 4
	for _, tc := range []struct {
		name   string
		killN1 bool
		on     func(n2, n3 *node) *node
	}{
		{"n1 killed, on n2", true, func(n2, _ *node) *node { return n2 }},
		{"n1 killed, on the restarted n3", true, func(_, n3 *node) *node { return n3 }},
		{"n1 running, on n2", false, func(n2, _ *node) *node { return n2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n1, n2, n3, old, token, cursor, killed := restartedSetup(t, sent)
			on := tc.on(n2, n3)
			heardPositions(t, on, killed)
			if tc.killN1 {
				n1.Kill()
			}
			c := resumeAt(t, on, "bob", token, read, read, cursor, fmt.Sprint(sent-read))
			if !tc.killN1 {
				old.ExpectClosed()
			}

			alice := rejoin(t, n3, "alice")
			alice.waitList(usersList("alice", "bob"))
			for i := 1; i <= 5; i++ {
				alice.Send(fmt.Sprint("b", i), "bob")
			}
			expectMessages(t, c, "b", 5)
		})
	}
}

// TestResumeSameNodeAfterOriginRestarted: as TestResumeAfterOriginRestarted,
// but bob's node n1 stays up and his connection is cut (closed): he
// resumes on n1 itself, whose session kept every frame he had not read.
// resumed says 0, the six come once, in order, then alice's five from the
// restarted n3, and nothing else.
func TestResumeSameNodeAfterOriginRestarted(t *testing.T) {
	const sent, read = 10, 4
	n1, _, n3, old, token, cursor, _ := restartedSetup(t, sent)
	old.NC.Close()
	c := resumeAt(t, n1, "bob", token, read, read, cursor, "0")
	for i := read + 1; i <= sent; i++ {
		if h, p := c.counted(); h.Type != protocol.ForwardMessage || string(p) != fmt.Sprint("1 alice a", i) {
			t.Fatalf("bob got %s %q, want alice's a%d again", h.Name, p, i)
		}
	}
	alice := rejoin(t, n3, "alice")
	alice.waitList(usersList("alice", "bob"))
	for i := 1; i <= 5; i++ {
		alice.Send(fmt.Sprint("b", i), "bob")
	}
	expectMessages(t, c, "b", 5)
}
