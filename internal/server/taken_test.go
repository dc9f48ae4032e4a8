package server

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// expectTold reads bob's frames up to the server's received n (its count
// of bob's frames taken): the counts told before it must grow, and not
// past n; any other frame fails the test.
func (r *resumable) expectTold(n uint64) {
	r.T.Helper()
	var last uint64
	for last < n {
		h, p := r.Frame()
		if h.Type != protocol.Received {
			r.T.Fatalf("got %s %q, want received up to %d", h.Name, p, n)
		}
		got, err := protocol.ParseCountFrame(p)
		if err != nil || got <= last || got > n {
			r.T.Fatalf("received %q after %d, want up to %d", p, last, n)
		}
		last = got
	}
}

// resumeTaken resumes r's session on a new connection asking for resume
// and taken, having read n counted frames, and expects resumed payload.
func (r *resumable) resumeTaken(t *testing.T, s *testServer, n uint64, resumed string) *resumable {
	t.Helper()
	c := dial(t, s.addr)
	features := []string{protocol.FeatureResume, protocol.FeatureTaken}
	c.Write(protocol.AppendExtHello(nil, features))
	c.Expect(protocol.ExtHello, joinSpace(features))
	c.Write(protocol.AppendResume(nil, r.name, r.token, n))
	c.Expect(protocol.Resumed, resumed)
	return &resumable{rawClient: c, name: r.name, token: r.token, n: n}
}

func sendFrame(text string, to ...string) []byte {
	return protocol.AppendMessage(nil, protocol.SendMessage, to, []byte(text))
}

// TestTakenCounted: the server counts bob's messages and list requests
// it has taken, tells him as his input pauses, and a resume says the
// count: a message cut mid-frame by the loss is not counted (bob sends it
// again), and the count goes on across connections.
func TestTakenCounted(t *testing.T) {
	s, log := resumeServer(t, Config{})
	bob := joinedResume(t, s, "bob", protocol.FeatureTaken)
	alice := joined(t, s, "alice")

	bob.Write(append(sendFrame("m1", "alice"), sendFrame("m2", "alice")...))
	alice.Expect(protocol.ForwardMessage, "1 bob m1")
	alice.Expect(protocol.ForwardMessage, "1 bob m2")
	bob.expectTold(2)

	m4 := sendFrame("m4", "alice")
	bob.Write(append(sendFrame("m3", "alice"), m4[:len(m4)-3]...)) // m4 cut mid-frame
	alice.Expect(protocol.ForwardMessage, "1 bob m3")
	bob.NC.Close() // (the server reads on into m4: it tells bob nothing before it pauses)
	waitAway(t, log, "bob", 1)

	b2 := bob.resumeTaken(t, s, 0, "0 3")
	b2.Write(m4) // sent again
	alice.Expect(protocol.ForwardMessage, "1 bob m4")
	b2.expectTold(4)
	b2.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	b2.counted() // the list
	b2.expectTold(5)

	// A takeover of a connection still open says the same count.
	b3 := b2.resumeTaken(t, s, b2.n, "0 5")
	b2.ExpectEnd()
	b3.Write(sendFrame("m5", "alice"))
	alice.Expect(protocol.ForwardMessage, "1 bob m5")
	b3.expectTold(6)
	if got, want := s.out.Count("msg: bob"), 5; got != want {
		t.Fatalf("msg: bob printed %d times, want %d", got, want)
	}
}

// TestTakenEvery: a client whose input does not pause is told the count
// at least every takeEvery frames.
func TestTakenEvery(t *testing.T) {
	s, _ := resumeServer(t, Config{})
	bob := joinedResume(t, s, "bob", protocol.FeatureTaken)
	alice := joined(t, s, "alice")
	const n = 5 * takeEvery
	var all []byte
	for i := 1; i <= n; i++ {
		all = append(all, sendFrame("m"+strconv.Itoa(i), "alice")...)
	}
	bob.Write(all)
	for i := 1; i <= n; i++ {
		alice.Expect(protocol.ForwardMessage, fmt.Sprintf("1 bob m%d", i))
	}
	var last uint64
	for told := 0; last < n; told++ {
		h, p := bob.Frame()
		got, err := protocol.ParseCountFrame(p)
		if h.Type != protocol.Received || err != nil || got <= last {
			t.Fatalf("got %s %q after received %d", h.Name, p, last)
		}
		if got-last > takeEvery {
			t.Fatalf("received %d after %d: more than %d frames untold", got, last, takeEvery)
		}
		last = got
	}
}

// TestTakenNotAsked: a session granted resume without taken gets no
// received frame and the one-field resumed, as before.
func TestTakenNotAsked(t *testing.T) {
	s, log := resumeServer(t, Config{})
	bob := joinedResume(t, s, "bob")
	alice := joined(t, s, "alice")
	bob.Write(sendFrame("m1", "alice"))
	alice.Expect(protocol.ForwardMessage, "1 bob m1")
	bob.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	if h, p := bob.counted(); h.Type != protocol.ResponseUsersList {
		t.Fatalf("got %s %q, want the list", h.Name, p)
	}
	bob.NC.Close()
	waitAway(t, log, "bob", 1)
	b2 := bob.resume(t, s, bob.n, 0) // expects "resumed 1 0"
	b2.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	if h, p := b2.counted(); h.Type != protocol.ResponseUsersList {
		t.Fatalf("got %s %q, want the list", h.Name, p)
	}
}

// TestTakenTakeoverWaits: a takeover waits for a frame the old
// connection is acting on, and counts it in resumed; a frame the old
// connection reads whole after the takeover is not acted on.
func TestTakenTakeoverWaits(t *testing.T) {
	s, _ := resumeServer(t, Config{})
	bob := joinedResume(t, s, "bob", protocol.FeatureTaken)
	alice := joined(t, s, "alice")
	bob.Write(sendFrame("m1", "alice"))
	alice.Expect(protocol.ForwardMessage, "1 bob m1")
	bob.expectTold(1)

	// The test stands for bob's old connection acting on a second frame
	// (beginTake to endTake; its serve goroutine waits for input
	// meanwhile).
	sess := sessionOf(t, s, "bob")
	old := sess.current()
	sess.takeMu.Lock()
	c := dial(t, s.addr)
	features := []string{protocol.FeatureResume, protocol.FeatureTaken}
	c.Write(protocol.AppendResume(protocol.AppendExtHello(nil, features), "bob", bob.token, bob.n))
	c.Expect(protocol.ExtHello, joinSpace(features))
	sess.taken++
	sess.takeMu.Unlock() // the resume cannot have stood before: it says 2
	c.Expect(protocol.Resumed, "0 2")
	if old.beginTake() {
		old.sess.takeMu.Unlock()
		t.Fatal("the connection taken over may act on a frame")
	}
	bob.ExpectEnd()
}

// committingHub is a hub that moves sessions (a cluster's node, to the
// server) and hands the test the peers that join, to commit their counts
// as the cluster's reports do.
type committingHub struct {
	*LocalHub
	joined chan Peer
}

func (h committingHub) Join(p Peer, maxUsers int) error {
	err := h.LocalHub.Join(p, maxUsers)
	if err == nil {
		h.joined <- p
	}
	return err
}

func (committingHub) TakeOver(Peer, protocol.Token, map[string]uint64) (uint64, error) {
	return 0, ErrNoSession
}

// TestTakenHeldUntilCommitted: on a cluster's node the client is told
// only the counts the hub committed (Committer), not what the server took
// as its input pauses; a resume says the exact count, then what is
// committed, and a commit past the count is not told.
func TestTakenHeldUntilCommitted(t *testing.T) {
	hub := committingHub{NewLocalHub(), make(chan Peer, 4)}
	cfg := resumeConfig()
	cfg.Hub = hub
	s, log := resumeServer(t, cfg)
	bob := joinedResume(t, s, "bob", protocol.FeatureTaken)
	peer := (<-hub.joined).(Committer)
	alice := joined(t, s, "alice")
	<-hub.joined

	bob.Write(append(sendFrame("m1", "alice"), sendFrame("m2", "alice")...))
	alice.Expect(protocol.ForwardMessage, "1 bob m1")
	alice.Expect(protocol.ForwardMessage, "1 bob m2")
	if n := peer.TakenNow(); n != 2 {
		t.Fatalf("TakenNow = %d, want 2", n)
	}
	peer.Commit(1) // what a report took before m2
	bob.Expect(protocol.Received, "1")
	peer.Commit(2)
	bob.Expect(protocol.Received, "2")

	bob.Write(sendFrame("m3", "alice"))
	alice.Expect(protocol.ForwardMessage, "1 bob m3")
	bob.NC.Close()
	waitAway(t, log, "bob", 1)
	b2 := bob.resumeTaken(t, s, 0, "0 3") // exact: took three
	b2.Expect(protocol.Received, "2")     // committed two
	peer.Commit(9)                        // past the count: not told
	peer.Commit(3)
	b2.Expect(protocol.Received, "3")
}

// TestRelease: a session with cursors released to another server hands
// over the frames this server originated after the client's position, in
// order, counts those let go of past the resume buffer, ends (its
// connection closed), and forwards what its senders push to it later.
func TestRelease(t *testing.T) {
	for _, tc := range []struct {
		name   string
		buffer int    // the resume buffer (0: the default)
		pos    uint64 // the client's position
		kept   []string
		missed uint64
	}{
		{name: "all kept", pos: 1, kept: []string{"m2", "m3"}},
		{name: "none read", pos: 0, kept: []string{"m1", "m2", "m3"}},
		{name: "all read", pos: 3},
		// A buffer of one forward_message keeps the last.
		{name: "let go of past the buffer", buffer: len(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"alice"}, []byte("m1"))), pos: 0, kept: []string{"m3"}, missed: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub := committingHub{NewLocalHub(), make(chan Peer, 4)}
			cfg := resumeConfig()
			cfg.Hub, cfg.ResumeBuffer = hub, tc.buffer
			s, _ := resumeServer(t, cfg)
			bob := joinedResume(t, s, "bob", protocol.FeatureCursor)
			rel := (<-hub.joined).(Releaser)
			alice := joined(t, s, "alice")
			<-hub.joined
			for _, m := range []string{"m1", "m2", "m3"} {
				alice.Write(sendFrame(m, "bob"))
			}
			alice.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
			alice.ExpectType(protocol.ResponseUsersList) // the three are queued to bob
			forwarded := make(chan []byte, 1)
			kept, missed, ok := rel.Release(tc.pos, func(f []byte) { forwarded <- f })
			var got []string
			for _, f := range kept {
				got = append(got, string(f[len(f)-2:]))
			}
			if !ok || !slices.Equal(got, tc.kept) || missed != tc.missed {
				t.Fatalf("Release(%d) = %q, %d, %v; want %q, %d, true", tc.pos, got, missed, ok, tc.kept, tc.missed)
			}
			bob.ExpectEnd()
			alice.Write(sendFrame("m4", "bob"))
			if f := <-forwarded; string(f[len(f)-2:]) != "m4" {
				t.Fatalf("forwarded %q, want m4", f)
			}
			if _, _, ok := rel.Release(0, nil); ok {
				t.Fatal("a released session was released again")
			}
		})
	}
}
