package cluster

import (
	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// Origins that do not answer a replay (issue 22, second part;
// docs/SESSIONS.md, "An origin that does not answer"). A resume on
// another node asks every live origin for what it kept after the client's
// position, and waits replayWait for the answers. An origin cut off from
// the node by an engine partition (or one that died a moment ago) does not
// answer; before, it then neither replayed nor counted, and what it had
// sent the user was lost without a word. Now:
//
//   - Every node reports to the others, with its report of what it
//     originated (every reportEvery), how many frames it has relayed so far
//     to each remote user granted resume whose count moved (its origin
//     sequence). A resume counts missed, for every origin that did not
//     answer, what it last reported beyond the client's position, and has
//     the session drop those frames should they come after all (a late
//     replay): so they are counted once and never delivered twice.
//   - An origin that sees in its watch that a user's record moved to a node
//     that never asked it for a replay (the request or the answer was lost)
//     replays what it kept to that node by itself, before anything new,
//     exactly as it would have answered: the session there drops what its
//     client already has and what was counted missed.
//
// What such an origin relayed after its last report and let go of before
// it learnt of the move is neither delivered nor counted: at most
// reportEvery's worth, unless the partition lasts longer than what it
// keeps (its bound, or the window).

// seqsSubject, after the cluster's name, carries the reports of origin
// sequences.
const seqsSubject = ".os"

// A report of origin sequences: the node's name's length (1), the name, its
// incarnation (8), then entries: the user's name's length (1), the name,
// the session's join token (8), the origin sequence (8).

// reportSeqs publishes the origin sequences that moved since the last
// report (sent holds what was sent, by session; entries of sessions no
// longer kept are removed).
func (h *Hub) reportSeqs(sent map[creditKey]uint64) {
	r := h.relay
	type seqOf struct {
		key creditKey
		rt  *retained
	}
	r.retMu.Lock()
	all := make([]seqOf, 0, len(r.ret))
	for k, rt := range r.ret {
		all = append(all, seqOf{k, rt})
	}
	r.retMu.Unlock()
	rep := h.newReport(h.cluster + seqsSubject)
	for _, e := range all {
		if e.rt.limit.Load() == 0 {
			continue // a client without cursors: a resume of it counts nothing
		}
		e.rt.mu.Lock()
		seq := e.rt.seq
		e.rt.mu.Unlock()
		if seq == sent[e.key] {
			continue
		}
		sent[e.key] = seq
		rep.add(e.key, seq)
	}
	rep.flush()
	r.retMu.Lock()
	for k := range sent {
		if r.ret[k] == nil {
			delete(sent, k)
		}
	}
	r.retMu.Unlock()
}

// heardSeqs takes another node's report of origin sequences.
func (h *Hub) heardSeqs(m *nats.Msg) {
	node, inc, entries, ok := h.reportFrom(m.Data)
	if !ok {
		return
	}
	h.noteSeqs(originID(node, inc), entries)
}

// noteSeqs keeps, from entries (each a session's position in origin's
// frames: the origin's own report, or a user's node's once the origin
// is gone, deadorigins.go), the furthest position heard for each session
// that is still one, and returns how many entries it took.
func (h *Hub) noteSeqs(origin string, entries []byte) (sessions int) {
	// The registry's lock first, as dropRetained (which forgets a
	// session's counts) holds it: a count heard for a session that
	// ended is not kept.
	h.reg.mu.RLock()
	defer h.reg.mu.RUnlock()
	h.moves.mu.Lock()
	defer h.moves.mu.Unlock()
	if h.moves.seqs == nil {
		h.moves.seqs = make(map[creditKey]map[string]uint64)
	}
	eachEntry(entries, 1, func(key creditKey, v []uint64) {
		if u, ok := h.reg.users[key.name]; !ok || u.token != key.token {
			return // not (or no longer) a session: nothing would forget it
		}
		s := h.moves.seqs[key]
		if s == nil {
			if len(h.moves.seqs) >= maxReportedSessions {
				return
			}
			s = make(map[string]uint64)
			h.moves.seqs[key] = s
		}
		if seq := v[0]; seq > s[origin] {
			s[origin] = seq
		}
		sessions++
	})
	if h.moves.testHookSeqs != nil {
		h.moves.testHookSeqs()
	}
	return sessions
}

// maxReportedSessions bounds the sessions whose origin sequences a node
// keeps: a node that reports forged names cannot grow it without end.
const maxReportedSessions = 1 << 20

// countUnanswered counts, for a resume of the session of key at the
// client's positions pos, the frames that the origins which did not
// answer (not in answered; this node's own incarnation answers itself)
// last reported beyond the client's position in them, and has p drop
// them should they come after all. It returns their sum.
func (h *Hub) countUnanswered(p server.Peer, key creditKey, pos map[string]uint64, answered map[string]bool) uint64 {
	self := originID(h.self, h.inc)
	type count struct {
		origin string
		seq    uint64
	}
	var counts []count
	h.moves.mu.Lock()
	for origin, seq := range h.moves.seqs[key] {
		if origin != self && !answered[origin] && seq > pos[origin] {
			counts = append(counts, count{origin, seq})
		}
	}
	h.moves.mu.Unlock()
	var missed uint64
	sk, _ := p.(server.Skipper)
	for _, c := range counts {
		missed += c.seq - pos[c.origin]
		if sk != nil {
			sk.SkipTo(c.origin, c.seq)
		}
		h.quiet.Warn("an origin did not answer a replay request; counting missed what it last reported", "user", key.name, "origin", c.origin, "position", pos[c.origin], "reported", c.seq)
	}
	return missed
}

// replayOnMove is called, under the registry's lock, when the record of
// the session of key moved to node: if this node keeps frames for it and
// was not asked for them by that node (its request or the answer was
// lost), it sends that node what it kept, in order, ahead of anything
// new, and from now on what its senders still send to the old node.
func (r *relay) replayOnMove(key creditKey, from, node string) {
	if node == r.self {
		return // a resume here: replaySelf did it
	}
	rt := r.retainedFor(key, nil)
	if rt == nil {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.to == node {
		return // asked, and answered
	}
	rt.from, rt.to, rt.local = from, node, nil
	rt.replayLocked(0, func(f keptFrame) { r.outboundTo(node).addSeq(key, f.seq, f.frame) })
}
