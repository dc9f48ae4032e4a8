package client

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/chattest"
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
	for _, tc := range chattest.SendLogCases(maxSentBytes, maxSentFrames) {
		t.Run(tc.Name, func(t *testing.T) {
			l := sendLogWith(tc.Sent, tc.Size)
			if tc.Told > 0 {
				if err := l.took(uint64(tc.Told)); err != nil {
					t.Fatal(err)
				}
			}
			if l.bytes > maxSentBytes && len(l.kept) > 1 || len(l.kept) > maxSentFrames {
				t.Fatalf("kept %d frames of %d bytes", len(l.kept), l.bytes)
			}
			again, lost, labels := l.resumeFrom(uint64(tc.N), tc.Exact)
			if len(again) != tc.Again || lost != uint64(tc.Lost) || !slices.Equal(labels, tc.Labels) {
				t.Fatalf("again %d, lost %d %q; want %d, %d %q", len(again), lost, labels, tc.Again, tc.Lost, tc.Labels)
			}
			if l.next != uint64(tc.Next) || l.pending() != tc.Again+tc.Held {
				t.Fatalf("next %d, %d kept; want %d, %d", l.next, l.pending(), tc.Next, tc.Again+tc.Held)
			}
			// The server's counts from now on are of the new numbering:
			// the frames sent again are let go of as it counts them.
			if tc.Again+tc.Held > 0 {
				if err := l.took(uint64(tc.Next) - 1); err != nil || l.pending() != 0 || l.bytes != 0 {
					t.Fatalf("took %d: %v, %d kept (%d bytes)", tc.Next-1, err, l.pending(), l.bytes)
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
