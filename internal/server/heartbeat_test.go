package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// hbTimeout is the heartbeat timeout of these tests: short, so that they
// wait little, and long enough for a loaded machine to answer a ping.
const hbTimeout = 600 * time.Millisecond

// heartbeatJoined joins name on a connection that asked for heartbeat
// (and extra features, which the server must grant too).
func heartbeatJoined(t *testing.T, s *testServer, name string, extra ...string) *rawClient {
	t.Helper()
	c := dial(t, s.addr)
	features := append([]string{protocol.FeatureHeartbeat}, extra...)
	if got := c.Hello(features...); got != strings.Join(features, " ") {
		t.Fatalf("granted %q, want %q", got, features)
	}
	c.Join(name)
	s.out.Wait(t, "join: "+name, 1)
	return c
}

// expectQuiet requires that nothing arrives on c for d: the event waited
// for is the read deadline passing.
func expectQuiet(t *testing.T, c *rawClient, d time.Duration) {
	t.Helper()
	c.NC.SetReadDeadline(time.Now().Add(d))
	h, err := c.R.ReadHeader()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: got %s (%v) within %v, want nothing", c.Name, h.Name, err, d)
	}
}

// TestHeartbeatPingPong: the server answers a ping with a pong; it pings
// a client that has said nothing for half the timeout, and a client that
// answers is never cut off, however long it says nothing else; one that
// stops answering is cut off, no sooner than the timeout after it last
// sent a frame, with the reason in the log, and leaves as after any
// lost connection (no resume asked for).
func TestHeartbeatPingPong(t *testing.T) {
	var logs logBuffer
	s := startServer(t, Config{HeartbeatTimeout: hbTimeout, Logger: logs.logger(slog.LevelInfo)})
	bob := heartbeatJoined(t, s, "bob")
	bob.Write(protocol.PingFrame)
	bob.Expect(protocol.Pong, "")

	// Four timeouts long, bob sends nothing but answers the pings.
	pings := 0
	for end := time.Now().Add(4 * hbTimeout); time.Now().Before(end); {
		last := time.Now()
		bob.Expect(protocol.Ping, "")
		if quiet := time.Since(last); quiet < hbTimeout/2 {
			t.Fatalf("pinged after %v of silence, before half the timeout (%v)", quiet, hbTimeout/2)
		}
		bob.Write(protocol.PongFrame)
		pings++
	}
	t.Logf("answered %d pings", pings)

	// Then it stops answering.
	last := time.Now()
	bob.Expect(protocol.Ping, "")
	bob.ExpectEnd()
	if quiet := time.Since(last); quiet < hbTimeout {
		t.Errorf("cut off after %v of silence, before the timeout (%v)", quiet, hbTimeout)
	}
	s.out.Wait(t, "disconnected: bob", 1)
	logs.wait(t, "cut connection off", "user=bob", "silent past the heartbeat timeout", "nothing arrived for "+hbTimeout.String())
}

// TestHeartbeatNotForOthers: a contract client, and one that asked for
// other extensions, are never pinged nor cut off for their silence; a
// ping from one of them is an unknown command, as before heartbeat
// existed. A server with the timeout at 0 grants no heartbeat.
func TestHeartbeatNotForOthers(t *testing.T) {
	s := startServer(t, Config{HeartbeatTimeout: hbTimeout})
	plain := joined(t, s, "plain")
	ext := dial(t, s.addr)
	if got := ext.Hello(protocol.FeatureNotOnline); got != protocol.FeatureNotOnline {
		t.Fatalf("granted %q", got)
	}
	ext.Join("ext")
	s.out.Wait(t, "join: ext", 1)
	hb := heartbeatJoined(t, s, "hb") // the sweeper runs: hb is pinged, and cut off
	hb.Write(protocol.PingFrame)
	hb.Expect(protocol.Pong, "")

	expectQuiet(t, plain, 2*hbTimeout)
	expectQuiet(t, ext, 10*time.Millisecond) // as long again, and more
	hb.Expect(protocol.Ping, "")
	hb.ExpectEnd()
	s.out.Wait(t, "disconnected: hb", 1)
	expectQuiet(t, plain, 10*time.Millisecond)
	for _, c := range []*rawClient{plain, ext} {
		if got := c.List(); got != "2 ext plain" {
			t.Fatalf("%s: list %q", c.Name, got)
		}
	}
	for _, c := range []*rawClient{plain, ext} {
		c.Write(protocol.PingFrame)
		c.ExpectRefused(protocol.ErrUnknownMessage)
	}

	off := startServer(t, Config{})
	c := dial(t, off.addr)
	if got := c.Hello(protocol.FeatureHeartbeat, protocol.FeatureNotOnline); got != protocol.FeatureNotOnline {
		t.Fatalf("a server without a heartbeat timeout granted %q", got)
	}
}

// TestHeartbeatSessionWaits: a session granted resume whose connection
// falls silent is cut off as lost: it waits for its client (no
// disconnected line, still listed, messages kept), and the resume gets
// what was sent meanwhile.
func TestHeartbeatSessionWaits(t *testing.T) {
	s := startServer(t, Config{HeartbeatTimeout: hbTimeout, ResumeWindow: time.Minute})
	bob := joinedResume(t, s, "bob", protocol.FeatureHeartbeat)
	alice := joined(t, s, "alice")
	bob.ExpectEnd() // silent: pinged, then cut off
	alice.Send("while away", "bob")
	s.out.Wait(t, "msg: alice", 1)
	if got := alice.List(); got != "2 alice bob" {
		t.Fatalf("list %q while bob is away", got)
	}
	c := dial(t, s.addr)
	c.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureResume, protocol.FeatureHeartbeat}))
	c.Expect(protocol.ExtHello, protocol.FeatureResume+" "+protocol.FeatureHeartbeat)
	c.Write(protocol.AppendResume(nil, "bob", bob.token, bob.n))
	c.Expect(protocol.Resumed, "0")
	c.Expect(protocol.ForwardMessage, "1 alice while away")
	if n := s.out.Count("disconnected: bob"); n != 0 {
		t.Errorf("%d disconnected lines for bob, want none", n)
	}
}

// TestHeartbeatBusyIsNotSilent: a connection whose frame the server is
// still reading (a send_file trickling in over two timeouts) is not
// silent, though no header arrives meanwhile: it is neither pinged nor
// cut off, and the file arrives whole.
func TestHeartbeatBusyIsNotSilent(t *testing.T) {
	var logs logBuffer
	s := startServer(t, Config{HeartbeatTimeout: hbTimeout, Logger: logs.logger(slog.LevelInfo)})
	bob := joined(t, s, "bob")
	alice := heartbeatJoined(t, s, "alice")
	content := []byte("0123456789abcdef")
	payload := "1 bob f.txt "
	alice.Write([]byte(fmt.Sprintf("send_file %d %s", len(payload)+len(content), payload)))
	tick := time.NewTicker(2 * hbTimeout / time.Duration(len(content)))
	defer tick.Stop()
	for i := range content {
		<-tick.C
		alice.Write(content[i : i+1])
	}
	bob.Expect(protocol.ForwardFile, "1 alice f.txt "+string(content))
	s.out.Wait(t, "file: alice", 1)
	alice.Write(protocol.PingFrame)
	alice.Expect(protocol.Pong, "") // not a ping first: alice was never silent
	if strings.Contains(logs.String(), "heartbeat") {
		t.Errorf("log:\n%s", logs.String())
	}
}
