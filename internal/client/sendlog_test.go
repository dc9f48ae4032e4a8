package client

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// sendLogWith returns a log holding n frames of size bytes each, labelled
// l1, l2...
func sendLogWith(n, size int) *sendLog {
	l := new(sendLog)
	l.init()
	for i := 1; i <= n; i++ {
		l.add(make([]byte, size), fmt.Sprint("l", i))
	}
	return l
}

func TestSendLogResume(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sent, size int
		told       uint64 // the server's received before the loss (0: none)
		n          uint64 // resumed's count
		exact      bool   // resumed's count is exact
		again      int    // frames sent again
		held       int    // frames taken and not confirmed, kept without being sent again
		lost       uint64
		labels     []string
		next       uint64 // the number of the next frame after the resume
	}{
		{name: "nothing taken", sent: 3, size: 10, n: 0, again: 3, next: 4},
		{name: "some taken", sent: 5, size: 10, told: 2, n: 3, again: 2, next: 6},
		{name: "all taken", sent: 5, size: 10, n: 5, again: 0, next: 6},
		{name: "count past what was sent", sent: 2, size: 10, n: 9, again: 0, next: 3},
		// A node that lost count says less than the client was told:
		// what was told stands, what follows is sent again and
		// numbered after the new node's count.
		{name: "lower bound under what was told", sent: 5, size: 10, told: 3, n: 0, again: 2, next: 3},
		{name: "lower bound over what was told", sent: 5, size: 10, told: 1, n: 2, again: 3, next: 6},
		// Past the bounds the oldest are let go of: those the server
		// did not take are counted and the last named.
		{name: "frames bound", sent: maxSentFrames + 7, size: 1, n: 0, again: maxSentFrames, lost: 7,
			labels: []string{"l3", "l4", "l5", "l6", "l7"}, next: maxSentFrames + 1},
		{name: "bytes bound", sent: 20, size: maxSentBytes / 8, n: 10, again: 8, lost: 2,
			labels: []string{"l11", "l12"}, next: 19},
		{name: "bytes bound, taken", sent: 20, size: maxSentBytes / 8, n: 12, again: 8, next: 21},
		{name: "bytes bound, told", sent: 20, size: maxSentBytes / 8, told: 11, n: 11, again: 8, lost: 1, labels: []string{"l12"}, next: 20},
		{name: "one frame over the bytes bound is kept", sent: 1, size: 2 * maxSentBytes, n: 0, again: 1, next: 2},
		// An exact count does not confirm: what it took beyond the
		// last received stays kept, not sent again.
		{name: "exact, taken not confirmed", sent: 5, size: 10, told: 1, n: 3, exact: true, again: 2, held: 2, next: 6},
		{name: "exact, all confirmed", sent: 5, size: 10, told: 3, n: 3, exact: true, again: 2, next: 6},
		{name: "exact, none sent again", sent: 5, size: 10, n: 5, exact: true, held: 5, next: 6},
		{name: "exact, bytes bound", sent: 20, size: maxSentBytes / 8, n: 14, exact: true, again: 6, held: 2, next: 21},
		{name: "exact, bytes bound, all let go of", sent: 20, size: maxSentBytes / 8, n: 12, exact: true, again: 8, next: 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := sendLogWith(tc.sent, tc.size)
			if tc.told > 0 {
				if err := l.took(tc.told); err != nil {
					t.Fatal(err)
				}
			}
			if l.bytes > maxSentBytes && len(l.kept) > 1 || len(l.kept) > maxSentFrames {
				t.Fatalf("kept %d frames of %d bytes", len(l.kept), l.bytes)
			}
			again, lost, labels := l.resumeFrom(tc.n, tc.exact)
			if len(again) != tc.again || lost != tc.lost || !slices.Equal(labels, tc.labels) {
				t.Fatalf("again %d, lost %d %q; want %d, %d %q", len(again), lost, labels, tc.again, tc.lost, tc.labels)
			}
			if l.next != tc.next || l.pending() != tc.again+tc.held {
				t.Fatalf("next %d, %d kept; want %d, %d", l.next, l.pending(), tc.next, tc.again+tc.held)
			}
			// The server's counts from now on are of the new numbering:
			// the frames sent again are let go of as it counts them.
			if tc.again+tc.held > 0 {
				if err := l.took(tc.next - 1); err != nil || l.pending() != 0 || l.bytes != 0 {
					t.Fatalf("took %d: %v, %d kept (%d bytes)", tc.next-1, err, l.pending(), l.bytes)
				}
			}
		})
	}
}

// TestSendLogHeldSentAgain: frames an exact resumed took without
// confirming them are sent again if the session next resumes from a
// lower bound (the node that took them died before confirming them).
func TestSendLogHeldSentAgain(t *testing.T) {
	l := sendLogWith(5, 10)
	if err := l.took(1); err != nil {
		t.Fatal(err)
	}
	if again, _, _ := l.resumeFrom(3, true); len(again) != 2 {
		t.Fatalf("exact resume sent %d again, want 2 (l4, l5)", len(again))
	}
	if err := l.took(2); err != nil || l.pending() != 3 {
		t.Fatalf("took 2: %v, %d kept, want 3", err, l.pending())
	}
	again, lost, _ := l.resumeFrom(0, false)
	var labels []string
	for _, f := range again {
		labels = append(labels, f.label)
	}
	if !slices.Equal(labels, []string{"l3", "l4", "l5"}) || lost != 0 || l.next != 4 {
		t.Fatalf("resume from ~0 sent again %q, lost %d, next %d; want l3 l4 l5, 0, 4", labels, lost, l.next)
	}
}

func TestSendLogTook(t *testing.T) {
	l := sendLogWith(4, 3)
	if err := l.took(5); err == nil {
		t.Error("a count past what was sent was taken")
	}
	if err := l.took(2); err != nil || l.pending() != 2 || l.bytes != 6 {
		t.Errorf("took 2: %v, %d kept, %d bytes", err, l.pending(), l.bytes)
	}
	if err := l.took(1); err != nil || l.pending() != 2 {
		t.Errorf("a stale count: %v, %d kept", err, l.pending())
	}
	if err := l.took(4); err != nil || l.pending() != 0 || l.kept != nil {
		t.Errorf("took 4: %v, %d kept", err, l.pending())
	}
}

func TestMessageLabel(t *testing.T) {
	long := strings.Repeat("é", 50)
	for _, tc := range []struct {
		names      []string
		text, want string
	}{
		{[]string{"bob"}, "hi", `to bob: "hi"`},
		{[]string{"bob", "carol"}, `say "x"`, `to bob, carol: "say \"x\""`},
		{[]string{"bob"}, long, `to bob: "` + strings.Repeat("é", 40) + `…"`},
		{[]string{"a", "b", "c", "d", "e"}, "x", `to a, b, c and 2 more: "x"`},
	} {
		if got := messageLabel(tc.names, tc.text); got != tc.want {
			t.Errorf("messageLabel(%q, %q) = %s, want %s", tc.names, tc.text, got, tc.want)
		}
	}
	if got := lostLine(7, []string{"a", "b"}); got != "client: 7 lines you typed may not have reached anyone (more than the client keeps to send again); the last: a; b" {
		t.Errorf("lostLine = %q", got)
	}
}

var takenGranted = append(slices.Clone(resumeGranted), protocol.FeatureTaken)

// grantTaken is grantResume, granting taken too.
func grantTaken(t *testing.T, nc net.Conn, r *protocol.Reader) {
	t.Helper()
	if p := expectFrame(t, r, protocol.ExtHello); !slices.Equal(strings.Fields(string(p)), resumeAsked) {
		t.Errorf("ext_hello %q", p)
	}
	nc.Write(protocol.AppendExtHello(nil, takenGranted))
}

// expectSend reads frames past the client's acknowledgements up to a
// send_message, which must be text to bob.
func expectSend(t *testing.T, r *protocol.Reader, text string) {
	t.Helper()
	if p := expectPastAcks(t, r, protocol.SendMessage); string(p) != "1 bob "+text {
		t.Errorf("send_message %q, want %q", p, text)
	}
}

// The client keeps what it sent until the server says it took it, and on
// a resume sends again, before anything new, exactly what the server did
// not take; with a count that is only a lower bound (another node took
// the session over) it sends again what was not confirmed and says some
// may arrive twice.
func TestClientSendsAgain(t *testing.T) {
	read := make(chan struct{})
	resumed := make(chan struct{})
	addr := serveSeq(t,
		func(nc net.Conn, r *protocol.Reader) {
			grantTaken(t, nc, r)
			expectFrame(t, r, protocol.Join)
			nc.Write(protocol.AppendSession(nil, testSessToken, 30000))
			expectSend(t, r, "m1")
			expectSend(t, r, "m2")
			nc.Write(protocol.AppendCount(nil, protocol.Received, 1)) // m2 was not taken
			close(read)
		},
		func(nc net.Conn, r *protocol.Reader) {
			grantTaken(t, nc, r)
			expectFrame(t, r, protocol.Resume)
			nc.Write(protocol.AppendResumed(nil, 0, 1, true))
			expectSend(t, r, "m2") // sent again, first
			close(resumed)
			expectSend(t, r, "m3")
			nc.Write(protocol.AppendCount(nil, protocol.Received, 2)) // m2 taken, m3 not
			expectSend(t, r, "m4")
		},
		func(nc net.Conn, r *protocol.Reader) {
			grantTaken(t, nc, r)
			expectFrame(t, r, protocol.Resume)
			nc.Write(protocol.AppendResumed(nil, 0, 0, false)) // a node that does not know
			expectSend(t, r, "m3")
			expectSend(t, r, "m4")
			expectSend(t, r, "m5")
			expectPastAcks(t, r, protocol.Disconnect)
		},
	)
	s := startClientWith(t, addr, func(c *client) { c.cfg.Extensions = true })
	s.input(t, "msg 1 bob m1", "msg 1 bob m2")
	<-read
	waitFor(t, s.stderr, "client: sent again 1 lines you typed that had not reached the server\n")
	<-resumed
	s.input(t, "msg 1 bob m3", "msg 1 bob m4")
	waitFor(t, s.stderr, `client: sent again 2 lines you typed that the server that failed may not have taken: some may arrive twice: to bob: "m3"; to bob: "m4"`+"\n")
	s.input(t, "msg 1 bob m5", "quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d; stderr:\n%s", c, s.stderr)
	}
	if got := s.stdout.String(); got != "quitting\n" {
		t.Errorf("stdout %q", got)
	}
}
