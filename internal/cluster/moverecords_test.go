package cluster

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/protocol"
)

// moveFails sets up bob's session granted resume on n0, and n2 (whose
// warnings go to the returned watch) about to take it over, with change
// called as n2's move of the records starts. It returns the nodes, bob's
// peer on n0 and the one that takes it over on n2.
func moveFails(t *testing.T, maxClients int, change func(nodes []*Node)) ([]*Node, *movingPeer, *movingPeer, *logWatch) {
	t.Helper()
	// Nothing the failed move started outlives the nodes: checked once
	// they are closed (this cleanup runs after testCluster's).
	testEngines(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	watch := newLogWatch()
	nodes := testClusterConfigured(t, 3, maxClients, func(i int, c *Config) {
		if i == 2 {
			c.Logger = slog.New(watch)
		}
	})
	token := protocol.Token{4, 5, 6}
	bob := newMovingPeer("bob", token)
	if err := nodes[0].Hub().Join(bob, maxClients); err != nil {
		t.Fatal(err)
	}
	settle(t, nodes)
	n2 := nodes[2]
	n2.hub.moves.mu.Lock()
	n2.hub.moves.testHookMove = func(string) { change(nodes) }
	n2.hub.moves.mu.Unlock()
	moved := newMovingPeer("bob", token)
	if _, err := n2.hub.TakeOver(moved, token, nil); err != nil {
		t.Fatal(err)
	}
	return nodes, bob, moved, watch
}

// letGo checks that n let go of the session of p: it has no local user
// of that name any more, in its hub or its server's.
func letGo(t *testing.T, n *Node, p *movingPeer) {
	t.Helper()
	p.waitMovedAway(t)
	n.hub.mu.Lock()
	_, held := n.hub.locals[p.name]
	n.hub.mu.Unlock()
	if held || n.hub.local.Lookup(p.name) != nil {
		t.Errorf("%s still holds %s's session after letting it go", n.cfg.Node, p.name)
	}
}

// TestMoveLosesRecord: as n2 moves bob's record to itself after taking
// his session over, the record has become another session's (bob left
// on n0 and another bob joined on n1 meanwhile): its compare-and-set
// fails, it reads the record, finds another token's hash, logs it and
// lets the session go (the client resumes again, and is refused there);
// the other session's record is left as it is.
func TestMoveLosesRecord(t *testing.T) {
	other := sha256.Sum256([]byte("another session's token"))
	var otherRev uint64
	nodes, _, moved, watch := moveFails(t, 10, func(nodes []*Node) {
		n1 := nodes[1]
		u := userEntry{node: n1.cfg.Node, inc: n1.inc, token: 99, resume: resumeInfo{hash: string(other[:]), window: 30000, retain: 1 << 20}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if otherRev, err = nodes[2].hub.reg.names.Put(ctx, userKey("bob"), u.value()); err != nil {
			t.Error(err)
		}
	})
	watch.wait(t, "a session moved here could not take its record; letting it go")
	letGo(t, nodes[2], moved)
	u, ok, err := nodes[2].hub.readUser("bob")
	if err != nil || !ok || u.token != 99 || u.rev != otherRev {
		t.Errorf("bob's record after the failed move: %+v, %v, %v; want the other session's, untouched", u, ok, err)
	}
}

// TestMoveFindsNoPlace: the cluster has one place, bob's; as n2 moves
// his records, the place has become another session's: the user record
// moves, but the place's compare-and-set fails and no other place is
// free. n2 logs it, removes the user record it wrote, and lets the
// session go; n0, seeing its record taken, lets its own go too: the
// session is over, and its name free, rather than held by a session
// without a place.
func TestMoveFindsNoPlace(t *testing.T) {
	nodes, bob, moved, watch := moveFails(t, 1, func(nodes []*Node) {
		n1 := nodes[1]
		r := nodes[2].hub.reg
		r.mu.RLock()
		slot, rev := -1, uint64(0)
		for i, s := range r.slots {
			if !s.placeholder() {
				slot, rev = i, s.rev
			}
		}
		r.mu.RUnlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.names.Update(ctx, slotKey(slot), slotEntry{node: n1.cfg.Node, inc: n1.inc, token: 99}.value(), rev); err != nil {
			t.Error(err)
		}
	})
	watch.wait(t, "a session moved here found no place under the cap; letting it go")
	letGo(t, nodes[2], moved)
	letGo(t, nodes[0], bob)
	settle(t, nodes) // n2's delete of the user record it wrote is done
	if u, ok, err := nodes[2].hub.readUser("bob"); err != nil || ok {
		t.Errorf("bob's record after the failed move: %+v, %v, %v; want it removed", u, ok, err)
	}
}
