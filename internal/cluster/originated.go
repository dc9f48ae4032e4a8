package cluster

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// What a node originated for its users' sessions (issue 22, second part;
// docs/SESSIONS.md). Frames a node sends its own users itself (a message
// between two of its users, an answer to a list) are kept by no other
// node: when it dies they die with it. So that they are not lost without
// a word, every node reports to the others how many counted frames it has
// originated for each of its sessions granted resume whose count moved:
// within quickWait of the count moving (the session tells the hub:
// server.CountWatcher; commit.go) and every reportEvery. A resume
// elsewhere compares the last count heard with the client's position in
// them (its cursor's "-") and counts the difference missed. What the node
// originated after its last report (at most quickWait's worth, and a
// round trip) is not counted: the bound of the error.

// originatedSubject, after the cluster's name, carries the reports.
const originatedSubject = ".og"

// reportEvery is how often a node reports what it originated.
const reportEvery = 200 * time.Millisecond

// maxReport bounds one report message.
const maxReport = 256 << 10

// originatedCount is the last count a node reported for a session.
type originatedCount struct {
	node string
	n    uint64
}

// A report: the node's name's length (1), the name, its incarnation (8),
// then entries: the user's name's length (1), the name, the session's join
// token (8), the count (8).

func (r *relay) subscribeOriginated() error {
	var err error
	r.originIn, err = r.h.nc.Subscribe(r.h.cluster+originatedSubject, r.h.heardOriginated)
	if err == nil {
		r.retAcksIn, err = r.h.nc.Subscribe(r.h.subject(retainAcksSubject, r.h.self), r.h.heardAcked)
	}
	if err == nil {
		r.seqsIn, err = r.h.nc.Subscribe(r.h.cluster+seqsSubject, r.h.heardSeqs)
	}
	if err == nil {
		err = r.subscribeCommits() // commit.go
	}
	if err == nil {
		r.h.spawn(r.h.reportOriginated)
	}
	return err
}

// reportedLocal is a local session granted resume, as a report sees it.
type reportedLocal struct {
	key creditKey
	os  server.OriginSender
	c   server.Committer // nil if the session does not count the client's frames
}

// reportOriginated publishes this node's reports until the node stops:
// all of them every reportEvery, and, within quickWait of a session's
// count moving (commit.go), the counts of the sessions that moved.
func (h *Hub) reportOriginated() {
	tick := time.NewTicker(reportEvery)
	defer tick.Stop()
	gather := time.NewTimer(quickWait)
	gather.Stop()
	sent := make(map[creditKey]uint64)
	seqsSent := make(map[creditKey]uint64)
	var locals []reportedLocal
	for {
		full := false
		select {
		case <-h.stop:
			return
		case <-tick.C:
			full = true
		case <-h.commit.kick:
			// What else moves meanwhile comes in the same report.
			gather.Reset(quickWait)
			select {
			case <-h.stop:
				return
			case <-gather.C:
			}
		}
		if full {
			locals = h.allReported(locals[:0])
			h.reportAcked(locals)  // acks.go
			h.reportSeqs(seqsSent) // seqs.go
		} else {
			locals = h.movedReported(locals[:0]) // commit.go
		}
		h.stageCounts(locals, full) // commit.go: before what was originated is read
		rep := h.newReport(h.cluster + originatedSubject)
		for _, l := range locals {
			n := l.os.Originated()
			if n == sent[l.key] {
				continue
			}
			sent[l.key] = n
			rep.add(l.key, n)
		}
		rep.flush()
		if full {
			live := make(map[creditKey]bool, len(locals))
			for _, l := range locals {
				live[l.key] = true
			}
			for k := range sent {
				if !live[k] {
					delete(sent, k)
				}
			}
		}
		h.probeStaged() // commit.go: after the report
		h.settleCommits()
	}
}

// allReported appends every local session granted resume to locals.
func (h *Hub) allReported(locals []reportedLocal) []reportedLocal {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, lu := range h.locals {
		if l, ok := reported(name, lu); ok {
			locals = append(locals, l)
		}
	}
	return locals
}

// reported returns the local user lu of name as a report sees it, if its
// session was granted resume.
func reported(name string, lu localUser) (reportedLocal, bool) {
	os, ok := lu.peer.(server.OriginSender)
	if !ok {
		return reportedLocal{}, false
	}
	l := reportedLocal{key: creditKey{name, lu.token}, os: os}
	if tc, ok := lu.peer.(server.TakenCounter); ok && tc.Takes() {
		l.c, _ = lu.peer.(server.Committer)
	}
	return l, true
}

// heardOriginated takes another node's report.
func (h *Hub) heardOriginated(m *nats.Msg) {
	node, _, entries, ok := h.reportFrom(m.Data)
	if !ok {
		return
	}
	var grew uint64
	h.moves.mu.Lock()
	if h.moves.originated == nil {
		h.moves.originated = make(map[creditKey]originatedCount)
	}
	eachEntry(entries, 1, func(key creditKey, v []uint64) {
		n := v[0]
		if old := h.moves.originated[key]; old.node == node && n > old.n {
			grew += n - old.n
		} else if old.node != node {
			grew += n
		}
		h.moves.originated[key] = originatedCount{node, n}
	})
	h.moves.mu.Unlock()
	h.m.originated.WithLabelValues(node).Add(float64(grew))
	if m.Reply != "" {
		h.answerProbe(m) // commit.go
	}
}

// originatedMissed returns how many frames node reported it originated
// for the session of key beyond the client's position in them.
func (m *moves) originatedMissed(key creditKey, node string, pos uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.originated[key]; ok && c.node == node && c.n > pos {
		return c.n - pos
	}
	return 0
}

// forgetOriginated drops what was heard of the session of key, which
// ended.
func (m *moves) forgetOriginated(key creditKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.originated, key)
	delete(m.seqs, key)
}
