package cluster

import (
	"encoding/binary"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// committed is a server.Committer that notes the counts committed.
type committed struct{ n uint64 }

func (c *committed) TakenNow() uint64 { return c.n }
func (c *committed) Commit(n uint64)  { c.n = max(c.n, n) }

var _ server.Committer = (*committed)(nil)

// TestSettleCommits: a probe's counts are committed once every live node
// has answered it; a silent or leaving node is not waited for, nor, past
// answerPatience, one whose incarnation answered no probe (a node of an
// earlier version); an answer from an earlier incarnation does not count.
func TestSettleCommits(t *testing.T) {
	now := time.Now()
	old := now.Add(-2 * answerPatience)
	for _, tc := range []struct {
		name    string
		answers map[string]probeAnswer
		at      time.Time
		want    uint64 // the count committed (0: none)
	}{
		{"every live node answered", map[string]probeAnswer{"n2": {2, 1}, "n3": {3, 4}}, now, 7},
		{"one has not answered this probe", map[string]probeAnswer{"n2": {2, 1}, "n3": {3, 0}}, now, 0},
		{"one never answered, within patience", map[string]probeAnswer{"n2": {2, 1}}, now, 0},
		{"one never answered, past patience", map[string]probeAnswer{"n2": {2, 1}}, old, 7},
		{"an earlier incarnation's answer", map[string]probeAnswer{"n2": {2, 1}, "n3": {9, 5}}, now, 0},
		{"behind, even past patience", map[string]probeAnswer{"n2": {2, 0}, "n3": {3, 1}}, old, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Hub{nodeInfo: nodeInfo{self: "n1"}}
			h.live = &liveness{nodes: map[string]*nodeState{
				"n1": {inc: 1},
				"n2": {inc: 2},
				"n3": {inc: 3},
				"n4": {inc: 4, silent: true},
				"n5": {inc: 5, left: true},
			}}
			c := new(committed)
			h.commit.answers = tc.answers
			h.commit.pending = []*probe{{serial: 1, at: tc.at, counts: []stagedCount{{c, 7}}}}
			h.settleCommits()
			if c.n != tc.want {
				t.Fatalf("committed %d, want %d", c.n, tc.want)
			}
			if left := len(h.commit.pending); (tc.want == 0) != (left == 1) {
				t.Fatalf("%d probes left pending", left)
			}
		})
	}
}

// TestSettleCommitsInOrder: a probe is committed only after the ones
// before it, and an answer to a later probe answers the earlier ones.
func TestSettleCommitsInOrder(t *testing.T) {
	h := &Hub{nodeInfo: nodeInfo{self: "n1"}}
	h.live = &liveness{nodes: map[string]*nodeState{"n2": {inc: 2}}}
	c := new(committed)
	now := time.Now()
	h.commit.pending = []*probe{
		{serial: 1, at: now, counts: []stagedCount{{c, 3}}},
		{serial: 2, at: now, counts: []stagedCount{{c, 5}}},
	}
	h.commit.answers = map[string]probeAnswer{"n2": {2, 1}}
	h.settleCommits()
	if c.n != 3 || len(h.commit.pending) != 1 {
		t.Fatalf("committed %d with %d pending, want 3 with 1", c.n, len(h.commit.pending))
	}
	h.commit.answers["n2"] = probeAnswer{2, 2}
	h.settleCommits()
	if c.n != 5 || len(h.commit.pending) != 0 {
		t.Fatalf("committed %d with %d pending, want 5 with 0", c.n, len(h.commit.pending))
	}
}

// TestHeardProbeAnswer: an answer names its probe in the subject and its
// node in the payload; malformed ones are dropped, and an answer older
// than one heard does not replace it.
func TestHeardProbeAnswer(t *testing.T) {
	h := &Hub{nodeInfo: nodeInfo{self: "n1", cluster: "c"}}
	h.live = &liveness{nodes: map[string]*nodeState{}}
	answer := func(subject string, inc uint64, node string) {
		h.heardProbeAnswer(&nats.Msg{Subject: subject, Data: append(binary.BigEndian.AppendUint64(nil, inc), node...)})
	}
	answer("c.oga.bjE.7", 2, "n2")
	answer("c.oga.bjE.5", 2, "n2")                     // older: kept 7
	answer("c.oga.bjE.x", 3, "n3")                     // no serial
	answer("c.oga.bjE.", 3, "n3")                      // none
	answer("c.oga.bjE.9", 3, "")                       // no node
	answer("c.oga.bjE.9", 3, strings.Repeat("n", 256)) // too long a name
	h.heardProbeAnswer(&nats.Msg{Subject: "c.oga.bjE.9", Data: []byte{1, 2}})
	want := map[string]probeAnswer{"n2": {2, 7}}
	if !maps.Equal(h.commit.answers, want) {
		t.Fatalf("answers %v, want %v", h.commit.answers, want)
	}
}

// TestOutboundCountsEveryEntry: a relay queue counts every entry it is
// given, numbered (a resume user's, addSeq) or not, as its publisher
// counts what it publishes: a probe waits for exactly the frames given
// before its counts were staged. addSeq counted none, and a probe after a
// resume user's frames passed at once.
func TestOutboundCountsEveryEntry(t *testing.T) {
	o := &outbound{wake: make(chan struct{}, 1)}
	key := creditKey{"bob", 1}
	o.add(key, []byte("a"))
	o.addSeq(key, 1, []byte("b"))
	if o.added != 2 || o.entries != 2 {
		t.Fatalf("added %d for %d entries, want 2", o.added, o.entries)
	}
	done := o.publishedBy(o.added)
	if done == nil {
		t.Fatal("published before anything was")
	}
	o.mu.Lock()
	o.published++ // one of the two
	o.wakeWaitersLocked()
	o.mu.Unlock()
	select {
	case <-done:
		t.Fatal("woken with one of two published")
	default:
	}
	o.mu.Lock()
	o.published++
	o.wakeWaitersLocked()
	o.mu.Unlock()
	select {
	case <-done:
	default:
		t.Fatal("not woken with both published")
	}
}
