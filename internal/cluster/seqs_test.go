package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

// waitReportedSeq waits until n has heard origin report seq frames
// relayed to the session of key.
func waitReportedSeq(t *testing.T, n *Node, key creditKey, origin string, seq uint64) {
	t.Helper()
	heard := make(chan struct{}, 1)
	n.hub.moves.mu.Lock()
	n.hub.moves.testHookSeqs = func() {
		select {
		case heard <- struct{}{}:
		default:
		}
	}
	n.hub.moves.mu.Unlock()
	defer func() {
		n.hub.moves.mu.Lock()
		n.hub.moves.testHookSeqs = nil
		n.hub.moves.mu.Unlock()
	}()
	deadline := time.After(10 * time.Second)
	for {
		n.hub.moves.mu.Lock()
		got := n.hub.moves.seqs[key][origin]
		n.hub.moves.mu.Unlock()
		if got >= seq {
			return
		}
		select {
		case <-heard:
		case <-deadline:
			t.Fatalf("%s heard %s report %d frames to %s, want %d", n.cfg.Node, origin, got, key.name, seq)
		}
	}
}

// TestUnansweredOriginCounted: bob's session (on n0, cursor frames) got
// five frames from n1 and his client read two when he resumes on n2,
// while n1 is cut off from n2's replay request (its subject swallows it
// unanswered, as an engine partition does). n2 waits its 2 s, then
// counts missed the three n1 last reported beyond the client's position
// (before: 0, and nothing said), and has the session drop them should
// they come after all. Once n1 sees the record moved to n2, which never
// got its answer, it sends n2 what it kept by itself, and its next frame
// follows: nothing is lost without a word, and nothing counted is
// delivered (the session drops frames 1-5).
func TestUnansweredOriginCounted(t *testing.T) {
	nodes := testCluster(t, 3, 100)
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	token := protocol.Token{1, 2, 3}
	bob := newMovingPeer("bob", token)
	if err := n0.Hub().Join(bob, 100); err != nil {
		t.Fatal(err)
	}
	settle(t, nodes)
	send := func(i int) {
		t.Helper()
		p := n1.Hub().Lookup("bob")
		if p == nil {
			t.Fatal("n1 does not find bob")
		}
		if err := p.Send([]byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		send(i)
	}
	got := bob.waitFrames(t, 5)
	origin := got[0].origin
	if origin != originID(n1.cfg.Node, n1.inc) || got[4].seq != 5 {
		t.Fatalf("bob got %v, want five frames of n1's", got)
	}
	u, _ := n2.hub.reg.user("bob")
	key := creditKey{"bob", u.token}
	waitReportedSeq(t, n2, key, origin, 5)

	// The partition: n1 takes replay requests and answers none.
	n1.hub.relay.replayIn.Unsubscribe()
	asked := make(chan struct{}, 1)
	hole, err := n1.hub.nc.Subscribe(n1.hub.subject(replaySubject, n1.cfg.Node), func(*nats.Msg) {
		select {
		case asked <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Unsubscribe()
	n1.hub.nc.Flush()

	moved := newMovingPeer("bob", token)
	missed, err := n2.hub.TakeOver(moved, token, map[string]uint64{origin: 2, server.LocalPosition: 0})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	default:
		t.Error("n1 never got the replay request")
	}
	if missed != 3 {
		t.Errorf("TakeOver counted %d missed, want the 3 n1 reported beyond the client's 2", missed)
	}
	if s := moved.skipped(origin); s != 5 {
		t.Errorf("the session skips n1's frames up to %d, want 5", s)
	}
	bob.waitMovedAway(t) // n0 saw its record taken
	// n1 sees the move too, and replays what it kept to n2.
	got = moved.waitFrames(t, 5)
	for i, f := range got[:5] {
		if f.origin != origin || f.seq != uint64(i+1) || f.frame != fmt.Sprint("m", i+1) {
			t.Fatalf("n2's session got %v, want n1's five frames replayed in order", got)
		}
	}
	send(6)
	if f := moved.waitFrames(t, 6)[5]; f.seq != 6 || f.frame != "m6" {
		t.Errorf("after the replay: %+v, want n1's sixth", f)
	}
}
