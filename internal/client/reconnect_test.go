package client

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

var (
	resumeAsked = []string{protocol.FeatureChunkedFile, protocol.FeatureFileUpload, protocol.FeatureNotOnline, protocol.FeatureTryAgain, protocol.FeatureResume, protocol.FeatureTaken}
	// try-again is not granted: the join is silent, as these scripts want.
	resumeGranted = []string{protocol.FeatureChunkedFile, protocol.FeatureFileUpload, protocol.FeatureNotOnline, protocol.FeatureResume}
	testSessToken = protocol.Token{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
)

// grantResume reads the ext_hello, which must ask for resume, and grants
// what it asks.
func grantResume(t *testing.T, nc net.Conn, r *protocol.Reader) {
	t.Helper()
	if p := expectFrame(t, r, protocol.ExtHello); !slices.Equal(strings.Fields(string(p)), resumeAsked) {
		t.Errorf("ext_hello %q", p)
	}
	nc.Write(protocol.AppendExtHello(nil, resumeGranted))
}

func forward(i int) []byte {
	return protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"bob"}, fmt.Appendf(nil, "m%d", i))
}

// The client acknowledges what it receives (at once after 64 frames, and
// within the ack delay after fewer), resumes a lost connection with the
// count of what it had, prints what is replayed once, says on stderr how
// many it missed, and sends a line typed during the resume after it.
func TestClientResumes(t *testing.T) {
	typed := make(chan struct{})
	addr := serveSeq(t,
		func(nc net.Conn, r *protocol.Reader) {
			grantResume(t, nc, r)
			expectFrame(t, r, protocol.Join)
			nc.Write(protocol.AppendSession(nil, testSessToken, 30000))
			for i := 1; i <= 70; i++ {
				nc.Write(forward(i))
			}
			// Acknowledged as they come: at once past 64 (the acker
			// may find more by then), the rest within the ack delay.
			for acked := uint64(0); acked < 70; {
				p := expectFrame(t, r, protocol.Received)
				n, err := protocol.ParseCountFrame(p)
				if err != nil || n <= acked || n > 70 || acked == 0 && n < 64 {
					t.Errorf("received %q after %d", p, acked)
					return
				}
				acked = n
			}
			nc.Write(append(forward(71), forward(72)...))
		},
		func(nc net.Conn, r *protocol.Reader) {
			grantResume(t, nc, r)
			p := expectFrame(t, r, protocol.Resume)
			name, tok, n, err := protocol.ParseResume(p)
			if err != nil || name != "me" || tok != testSessToken || n != 72 {
				t.Errorf("resume %q: %v", p, err)
			}
			close(typed) // the client holds its writers until the answer
			nc.Write(protocol.AppendCount(nil, protocol.Resumed, 3))
			nc.Write(forward(76))
			if p := expectPastAcks(t, r, protocol.SendMessage); string(p) != "1 bob typed meanwhile" {
				t.Errorf("after the resume: send_message %q", p)
			}
			expectPastAcks(t, r, protocol.Disconnect)
		},
	)
	s := startClientWith(t, addr, func(c *client) { c.cfg.Extensions = true })
	<-typed
	s.input(t, "msg 1 bob typed meanwhile")
	waitFor(t, s.stdout, "msg: bob: m76\n")
	s.input(t, "quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d", c)
	}
	var want strings.Builder
	for _, i := range append(seq(1, 72), 76) {
		fmt.Fprintf(&want, "msg: bob: m%d\n", i)
	}
	want.WriteString("quitting\n")
	if got := s.stdout.String(); got != want.String() {
		t.Errorf("stdout:\n%s\nwant\n%s", got, want.String())
	}
	for _, w := range []string{"client: connection lost; resumed on " + addr + " after ", "client: missed 3 messages"} {
		if !strings.Contains(s.stderr.String(), w) {
			t.Errorf("stderr %q lacks %q", s.stderr.String(), w)
		}
	}
}

// expectPastAcks reads frames up to one that is not a received (the
// client acknowledges whenever it has counted frames to acknowledge), and
// checks its type.
func expectPastAcks(t *testing.T, r *protocol.Reader, want protocol.Type) []byte {
	t.Helper()
	for {
		h, err := r.ReadHeader()
		if err != nil {
			t.Errorf("got %v, want %s", err, want)
			return nil
		}
		p, _ := r.ReadPayload(nil)
		if h.Type == protocol.Received {
			continue
		}
		if h.Type != want {
			t.Errorf("got %s %q, want %s", h.Name, p, want)
		}
		return p
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// A resume the server refuses ends the session with the contract's line.
func TestClientResumeRefused(t *testing.T) {
	addr := serveSeq(t,
		func(nc net.Conn, r *protocol.Reader) {
			grantResume(t, nc, r)
			expectFrame(t, r, protocol.Join)
			nc.Write(protocol.AppendSession(nil, testSessToken, 30000))
			nc.Write(forward(1))
		},
		func(nc net.Conn, r *protocol.Reader) {
			grantResume(t, nc, r)
			expectFrame(t, r, protocol.Resume)
			nc.Write(protocol.AppendEmpty(nil, protocol.ResumeFailed))
		},
	)
	s := startClientWith(t, addr, func(c *client) { c.cfg.Extensions = true })
	waitFor(t, s.stdout, "disconnected: connection to server lost\n")
	s.input(t, "quit")
	if c := s.exit(t); c != ExitDisconnected {
		t.Errorf("exit %d", c)
	}
	if got := s.stdout.String(); got != "msg: bob: m1\ndisconnected: connection to server lost\n" {
		t.Errorf("stdout %q", got)
	}
	if !strings.Contains(s.stderr.String(), "cannot resume the session") {
		t.Errorf("stderr %q", s.stderr.String())
	}
}

func TestParseAddresses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "localhost", want: []string{"localhost:15000"}},
		{in: "a,b:9000,10.0.0.1", want: []string{"a:15000", "b:9000", "10.0.0.1:15000"}},
		{in: "::1", want: []string{"[::1]:15000"}},
		{in: "[::1]:9000, host", want: []string{"[::1]:9000", "host:15000"}},
		{in: "a,,b", bad: true},
		{in: "a:0", bad: true},
		{in: "a:70000", bad: true},
		{in: "a:x", bad: true},
		{in: ":9000", bad: true},
	} {
		got, err := ParseAddresses(tc.in, 15000)
		if tc.bad != (err != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("ParseAddresses(%q) = %q, %v", tc.in, got, err)
		}
	}
}
