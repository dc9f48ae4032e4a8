package cluster

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// Committed counts of the client's frames (the taken feature; docs/
// SESSIONS.md, "The client's frames"; server.Committer). A frame a node
// took may have done what no other node knows of when the node dies: a
// message to another of its own users, originated after its last report
// of what it originated (originated.go) and not yet delivered, dies with
// it uncounted; frames for other nodes' users may still wait in its relay
// queue. If the client had been told the frame was taken, nobody would
// send it again and nobody would count it: lost unsaid. So a node tells
// its clients only counts that every live node has acknowledged:
//
//  1. At a report, the node stages the count of each of its sessions that
//     counts the client's frames (before it reads what it originated for
//     them, which then covers every frame those frames made) with how many
//     frames each relay queue had been given.
//  2. Once the relay queues have published those frames, the node
//     publishes a probe on the reports' subject, after the report of what
//     it originated, with a reply subject; every node answers it once it
//     has taken the reports before it (one subscription takes both, in
//     order) and, the engine keeping one connection's messages in order,
//     has received the frames relayed to it before it.
//  3. When every live node that answers probes has answered, the counts
//     staged are committed: the sessions tell their clients.
//
// A frame not committed when the node dies is kept by its client and sent
// again where the session resumes (it may arrive twice: the client names
// it); one committed has its frames at the other nodes or counted in the
// report they heard. The cost: one probe and one answer per node pair per
// report in which a count moved, and clients keep the frames of the last
// report or two (200-400 ms) instead of the last round trip.

// commitAckSubject, before this node's name and a probe's serial, carries
// the answers to its probes.
const commitAckSubject = ".oga."

// maxPendingProbes bounds the probes waiting for answers: a node that
// answers none for longer holds commits back until the liveness calls it
// silent, and no more counts are staged meanwhile.
const maxPendingProbes = 64

// commits is what the hub's reports know of committed counts.
type commits struct {
	// Owned by reportOriginated.
	staged *probe               // the counts of the last report, until its frames are published
	last   map[creditKey]uint64 // the counts staged, by session
	serial uint64               // the last probe's

	mu      sync.Mutex
	pending []*probe               // probes published and not answered by every live node, oldest first; guarded by mu
	answers map[string]probeAnswer // by node: the last probe it answered; guarded by mu
}

// probe is the counts of one report, to commit once every live node has
// answered its probe.
type probe struct {
	serial  uint64
	counts  []stagedCount
	barrier []relayMark
}

// stagedCount is a session's count, staged.
type stagedCount struct {
	c server.Committer
	n uint64
}

// relayMark is how many frames a relay queue had been given when counts
// were staged.
type relayMark struct {
	o     *outbound
	added uint64
}

// probeAnswer is a node's answer to this node's probe serial, from its
// incarnation inc.
type probeAnswer struct {
	inc, serial uint64
}

// subscribeCommits takes the answers to this node's probes.
func (r *relay) subscribeCommits() error {
	var err error
	r.commitIn, err = r.nc.Subscribe(r.subject(commitAckSubject, r.self)+".*", r.h.heardProbeAnswer)
	return err
}

// stageCounts stages the counts of locals that moved, with the relay
// queues' marks, unless counts are staged already (their frames not yet
// published) or too many probes wait for answers.
func (h *Hub) stageCounts(locals []reportedLocal) {
	c := &h.commit
	if c.staged != nil {
		return
	}
	c.mu.Lock()
	full := len(c.pending) >= maxPendingProbes
	c.mu.Unlock()
	if full {
		return
	}
	if c.last == nil {
		c.last = make(map[creditKey]uint64)
	}
	var counts []stagedCount
	live := make(map[creditKey]bool, len(locals))
	for _, l := range locals {
		if l.c == nil {
			continue
		}
		live[l.key] = true
		n := l.c.TakenNow()
		if n == c.last[l.key] {
			continue
		}
		c.last[l.key] = n
		counts = append(counts, stagedCount{l.c, n})
	}
	for k := range c.last {
		if !live[k] {
			delete(c.last, k)
		}
	}
	if len(counts) == 0 {
		return
	}
	p := &probe{counts: counts}
	h.relay.outMu.RLock()
	for _, o := range h.relay.out {
		o.mu.Lock()
		p.barrier = append(p.barrier, relayMark{o, o.added})
		o.mu.Unlock()
	}
	h.relay.outMu.RUnlock()
	c.staged = p
}

// probeStaged publishes the probe of the counts staged once the relay
// queues have published the frames given them before, after the report
// of what this node originated.
func (h *Hub) probeStaged() {
	c := &h.commit
	p := c.staged
	if p == nil {
		return
	}
	for _, m := range p.barrier {
		m.o.mu.Lock()
		done := m.o.published >= m.added
		m.o.mu.Unlock()
		if !done {
			return // at the next report
		}
	}
	c.staged = nil
	c.serial++
	p.serial = c.serial
	c.mu.Lock()
	c.pending = append(c.pending, p)
	c.mu.Unlock()
	reply := h.subject(commitAckSubject, h.self) + "." + strconv.FormatUint(p.serial, 10)
	h.nc.PublishMsg(&nats.Msg{Subject: h.cluster + originatedSubject, Reply: reply, Data: h.reportHead()})
	h.settleCommits()
}

// answerProbe answers a probe of the node whose report m is, which this
// node has taken with every report before it: its incarnation (8) and
// its name.
func (h *Hub) answerProbe(m *nats.Msg) {
	b := binary.BigEndian.AppendUint64(nil, h.inc)
	h.nc.Publish(m.Reply, append(b, h.self...))
}

// heardProbeAnswer takes another node's answer to one of this node's
// probes.
func (h *Hub) heardProbeAnswer(m *nats.Msg) {
	i := strings.LastIndexByte(m.Subject, '.')
	serial, err := strconv.ParseUint(m.Subject[i+1:], 10, 64)
	if err != nil || len(m.Data) < 9 || len(m.Data) > 8+255 {
		return
	}
	inc := binary.BigEndian.Uint64(m.Data)
	node := string(m.Data[8:])
	c := &h.commit
	c.mu.Lock()
	if c.answers == nil {
		c.answers = make(map[string]probeAnswer)
	}
	if a, ok := c.answers[node]; ok && a.inc == inc && a.serial >= serial {
		c.mu.Unlock()
		return
	}
	if len(c.answers) >= maxNodes {
		clear(c.answers) // forged nodes: the live ones answer again at the next probe
	}
	c.answers[node] = probeAnswer{inc, serial}
	c.mu.Unlock()
	h.settleCommits()
}

// settleCommits commits the counts of the probes every live node that
// answers probes has answered. A node not heard, or whose incarnation has
// not answered yet (a node of an earlier version never does), is not
// waited for.
func (h *Hub) settleCommits() {
	c := &h.commit
	var done []*probe
	h.live.mu.RLock()
	c.mu.Lock()
	for len(c.pending) > 0 {
		p := c.pending[0]
		answered := true
		for node, st := range h.live.nodes {
			if node == h.self || st.left || st.silent {
				continue
			}
			if a, ok := c.answers[node]; ok && a.inc == st.inc && a.serial < p.serial {
				answered = false
				break
			}
		}
		if !answered {
			break
		}
		done = append(done, p)
		c.pending[0] = nil
		c.pending = c.pending[1:]
	}
	c.mu.Unlock()
	h.live.mu.RUnlock()
	for _, p := range done {
		for _, sc := range p.counts {
			sc.c.Commit(sc.n)
		}
	}
}
