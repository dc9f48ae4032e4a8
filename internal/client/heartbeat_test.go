package client

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// expectPastBeats is expectPastAcks that also passes over the heartbeat's
// frames.
func expectPastBeats(t *testing.T, r *protocol.Reader, want protocol.Type) []byte {
	t.Helper()
	for {
		h, p, ok := nextFrame(t, r)
		if !ok || h.Type != protocol.Received && h.Type != protocol.Ping && h.Type != protocol.Pong {
			if ok && h.Type != want {
				t.Errorf("got %s %q, want %s", h.Name, p, want)
			}
			return p
		}
	}
}

// TestClientHeartbeat: a client that asked for heartbeat answers the
// server's ping, pings when it has heard nothing for its interval, and,
// hearing nothing for three intervals from a server that keeps the
// connection open, takes it as lost (stderr says so) and resumes with
// what it had: the messages come once, in order.
func TestClientHeartbeat(t *testing.T) {
	const every = 100 * time.Millisecond
	asked := []string{protocol.FeatureChunkedFile, protocol.FeatureFileUpload, protocol.FeatureNotOnline, protocol.FeatureTryAgain, protocol.FeatureHeartbeat, protocol.FeatureResume, protocol.FeatureTaken}
	granted := []string{protocol.FeatureChunkedFile, protocol.FeatureFileUpload, protocol.FeatureNotOnline, protocol.FeatureHeartbeat, protocol.FeatureResume}
	hello := func(nc net.Conn, r *protocol.Reader) {
		if p := expectFrame(t, r, protocol.ExtHello); !slices.Equal(strings.Fields(string(p)), asked) {
			t.Errorf("ext_hello %q, want %q", p, asked)
		}
		nc.Write(protocol.AppendExtHello(nil, granted))
	}
	addr := serveSeq(t,
		func(nc net.Conn, r *protocol.Reader) {
			hello(nc, r)
			expectFrame(t, r, protocol.Join)
			nc.Write(protocol.AppendSession(nil, testSessToken, 30000))
			nc.Write(forward(1))
			nc.Write(protocol.PingFrame)
			lastSent := time.Now() // the client heard the last byte after this
			expectPastAcks(t, r, protocol.Pong)
			expectPastAcks(t, r, protocol.Ping)
			if quiet := time.Since(lastSent); quiet < every {
				t.Errorf("the client pinged after %v of silence, before its interval (%v)", quiet, every)
			}
			// Silent from here, the connection open: the client must
			// give it up.
			for {
				if _, err := r.ReadHeader(); err != nil {
					break
				}
				r.Discard()
			}
			if quiet := time.Since(lastSent); quiet < 3*every {
				t.Errorf("the client gave the connection up after %v of silence, before three intervals", quiet)
			}
		},
		func(nc net.Conn, r *protocol.Reader) {
			hello(nc, r)
			p := expectFrame(t, r, protocol.Resume)
			if name, tok, n, err := protocol.ParseResume(p); err != nil || name != "me" || tok != testSessToken || n != 1 {
				t.Errorf("resume %q: %v", p, err)
			}
			nc.Write(protocol.AppendCount(nil, protocol.Resumed, 0))
			nc.Write(forward(2))
			expectPastBeats(t, r, protocol.Disconnect)
		},
	)
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions = true
		c.cfg.Heartbeat = every
	})
	waitFor(t, s.stdout, "msg: bob: m1\nmsg: bob: m2\n")
	waitFor(t, s.stderr, "; taking the connection as lost\n")
	if !strings.Contains(s.stderr.String(), "client: no answer from the server for ") {
		t.Errorf("stderr: %q", s.stderr)
	}
	s.input(t, "quit")
	if code := s.exit(t); code != ExitOK {
		t.Errorf("exit %d", code)
	}
	if got := s.stdout.String(); got != "msg: bob: m1\nmsg: bob: m2\nquitting\n" {
		t.Errorf("stdout %q", got)
	}
}
