package cluster

import (
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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
//  1. At a report (within quickWait of a count moving: server.CountWatcher;
//     and every reportEvery), the node stages the count of each of its
//     sessions that counts the client's frames and moved (before it reads
//     what it originated for them, which then covers every frame those
//     frames made) with how many frames each relay queue had been given.
//  2. Once the relay queues have published those frames, the node
//     publishes a probe on the reports' subject, after the report of what
//     it originated, with a reply subject; every node answers it once it
//     has taken the reports before it (one subscription takes both, in
//     order) and, the engine keeping one connection's messages in order,
//     has received the frames relayed to it before it.
//  3. When every live node has answered, the counts staged are committed:
//     the sessions tell their clients.
//
// A frame not committed when the node dies is kept by its client and sent
// again where the session resumes (it may arrive twice: the client names
// it); one committed has its frames at the other nodes or counted in the
// report they heard. The cost: a report, a probe and an answer per node
// pair per quickWait in which a count moved; a client learns its count
// 6-7 ms after a line (three nodes on one machine, 40 lines: p50 6.4 ms,
// max 7.4 ms) instead of at once, and keeps the lines of those
// milliseconds.

// commitAckSubject, before this node's name and a probe's serial, carries
// the answers to its probes.
const commitAckSubject = ".oga."

// quickWait is how long a node gathers the counts that move before it
// reports them and probes, once one moved: counts are committed in about
// quickWait and a round trip between the nodes, instead of at the next
// periodic report (up to reportEvery), so the lines a client keeps, and
// sends again after a node's death (maybe twice), are those of a few
// milliseconds. With it, a client killed 50 ms after its twenty lines had
// all twenty sent again and shown twice (a manual run, three nodes).
const quickWait = 5 * time.Millisecond

// barrierWait bounds how long a probe waits for the relay queues to
// publish the frames given them before its counts were staged; past it,
// the next report probes.
const barrierWait = 50 * time.Millisecond

// answerPatience is how long a probe waits for a node that has answered
// none in its incarnation: one of an earlier version, which never will,
// holds confirmations back this long (its clients keep 2 s of lines).
const answerPatience = 2 * time.Second

// maxMoved bounds the sessions noted as moved between two reports; past
// it, the periodic report covers the others.
const maxMoved = 1 << 16

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
	wait   *time.Timer          // for barrierWait

	kick  chan struct{}            // has a token when a count moved; made by newHub
	dmu   sync.Mutex               // guards moved
	moved map[server.Peer]struct{} // sessions whose count moved since the last report; guarded by dmu

	mu      sync.Mutex
	pending []*probe               // probes published and not answered by every live node, oldest first; guarded by mu
	answers map[string]probeAnswer // by node: the last probe it answered; guarded by mu
}

// probe is the counts of one report, to commit once every live node has
// answered its probe.
type probe struct {
	serial  uint64
	at      time.Time // when it was published
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

// published is a wait for an outbound's published count to reach n.
type published struct {
	n    uint64
	done chan struct{}
}

// publishedBy returns a channel closed once o has published its first n
// entries, or nil if it has.
func (o *outbound) publishedBy(n uint64) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.published >= n {
		return nil
	}
	w := published{n, make(chan struct{})}
	o.waiters = append(o.waiters, w)
	return w.done
}

// wakeWaitersLocked closes the waits o's published count has reached. The
// caller holds o.mu.
func (o *outbound) wakeWaitersLocked() {
	o.waiters = slices.DeleteFunc(o.waiters, func(w published) bool {
		if w.n <= o.published {
			close(w.done)
			return true
		}
		return false
	})
}

// CountsMoved implements server.CountWatcher: p's count of the client's
// frames, or of the frames this node originated for it, moved.
func (h *Hub) CountsMoved(p server.Peer) {
	c := &h.commit
	c.dmu.Lock()
	if c.moved == nil {
		c.moved = make(map[server.Peer]struct{})
	}
	if len(c.moved) < maxMoved {
		c.moved[p] = struct{}{}
	}
	c.dmu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// movedReported appends the local sessions whose counts moved since the
// last report to locals.
func (h *Hub) movedReported(locals []reportedLocal) []reportedLocal {
	c := &h.commit
	c.dmu.Lock()
	moved := c.moved
	c.moved = nil
	c.dmu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range moved {
		name := p.Name()
		if lu, ok := h.locals[name]; ok && lu.peer == p {
			if l, ok := reported(name, lu); ok {
				locals = append(locals, l)
			}
		}
	}
	return locals
}

// stageCounts stages the counts of locals that moved, with the relay
// queues' marks, unless counts are staged already (their frames not yet
// published) or too many probes wait for answers. locals is every local
// session (all) or some of them.
func (h *Hub) stageCounts(locals []reportedLocal, all bool) {
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
	if all {
		for k := range c.last {
			if !live[k] {
				delete(c.last, k)
			}
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
		done := m.o.publishedBy(m.added)
		if done == nil {
			continue
		}
		if c.wait == nil {
			c.wait = time.NewTimer(barrierWait)
		} else {
			c.wait.Reset(barrierWait)
		}
		select {
		case <-done:
			c.wait.Stop()
		case <-c.wait.C:
			return // at the next report
		case <-h.stop:
			return
		}
	}
	c.staged = nil
	c.serial++
	p.serial, p.at = c.serial, time.Now()
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

// settleCommits commits the counts of the probes every live node has
// answered. A node not heard is not waited for, nor, past answerPatience,
// one whose incarnation has answered no probe yet (a node of an earlier
// version never does).
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
			a, ok := c.answers[node]
			if ok && a.inc == st.inc && a.serial < p.serial || (!ok || a.inc != st.inc) && time.Since(p.at) < answerPatience {
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
