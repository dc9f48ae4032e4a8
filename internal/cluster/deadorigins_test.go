package cluster

import (
	"maps"
	"testing"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

// positionedPeer is a movingPeer whose session has had frames of origins
// (server.OriginPositions). A pointer: the hub compares peers.
type positionedPeer struct {
	*movingPeer
	pos map[string]uint64
}

var _ server.OriginPositions = (*positionedPeer)(nil)

func (p *positionedPeer) Positions() map[string]uint64 { return maps.Clone(p.pos) }

// TestDeadOriginPositionsCounted: bob's session on n0 has had 7 frames of
// an origin that n0 heard and is gone ("gone/abc"), 3 of n1, which is
// alive, and 9 of one n0 never heard ("never/abc", as a client's cursor
// may name). n0 reports the first to the others, not the other two; a
// resume of bob on n2 at position 3 in the gone origin counts the 4
// beyond it missed (nobody else reported any) and has the session drop
// them should they come.
func TestDeadOriginPositionsCounted(t *testing.T) {
	nodes := testCluster(t, 3, 100)
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	token := protocol.Token{4, 5, 6}
	live := originID(n1.cfg.Node, n1.inc)
	bob := &positionedPeer{newMovingPeer("bob", token), map[string]uint64{"gone/abc": 7, live: 3, "never/abc": 9}}
	if err := n0.Hub().Join(bob, 100); err != nil {
		t.Fatal(err)
	}
	settle(t, nodes)
	u, _ := n2.hub.reg.user("bob")
	key := creditKey{"bob", u.token}
	n0.hub.reportPositionsIn(n0.hub.heardIncarnations(), map[string]bool{"gone/abc": true, live: true})
	waitReportedSeq(t, n2, key, "gone/abc", 7)
	n2.hub.moves.mu.Lock()
	gotLive, gotNever := n2.hub.moves.seqs[key][live], n2.hub.moves.seqs[key]["never/abc"]
	n2.hub.moves.mu.Unlock()
	if gotLive != 0 || gotNever != 0 {
		t.Errorf("n2 heard positions %d in n1, which is alive, and %d in an origin n0 never heard: only origins gone are reported", gotLive, gotNever)
	}

	moved := newMovingPeer("bob", token)
	missed, err := n2.hub.TakeOver(moved, token, map[string]uint64{"gone/abc": 3, live: 3, "never/abc": 0, server.LocalPosition: 0})
	if err != nil {
		t.Fatal(err)
	}
	if missed != 4 {
		t.Errorf("TakeOver counted %d missed, want the 4 n0 had beyond the client's 3", missed)
	}
	if s := moved.skipped("gone/abc"); s != 7 {
		t.Errorf("the session skips the gone origin's frames up to %d, want 7", s)
	}
}

// TestParseOriginID: parseOriginID reads back what originID writes, and
// refuses what it never writes.
func TestParseOriginID(t *testing.T) {
	for _, tc := range []struct {
		node string
		inc  uint64
	}{{"n1", 0x90a051405b23e485}, {"a/b", 1}, {"x", 0}, {"", 5}} {
		node, inc, ok := parseOriginID(originID(tc.node, tc.inc))
		if !ok || node != tc.node || inc != tc.inc {
			t.Errorf("originID(%q, %x) read back as %q, %x, %v", tc.node, tc.inc, node, inc, ok)
		}
	}
	for _, bad := range []string{"n1", "n1/", "n1/xyz", "n1/10000000000000000"} {
		if _, _, ok := parseOriginID(bad); ok {
			t.Errorf("parseOriginID(%q) accepted it", bad)
		}
	}
}
