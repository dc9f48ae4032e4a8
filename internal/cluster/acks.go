package cluster

import (
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// Acknowledgements to the origins (issue 22, second part;
// docs/SESSIONS.md, "Origin retention: bounds and acknowledgements"). An
// origin keeps what it relayed to a remote user whose session was granted
// resume so that a resume elsewhere gets it after the user's node died;
// what the user's client has acknowledged is never asked for again (a
// resume presents a position at least that far). So the user's node turns
// its clients' acknowledgements (received n) into positions in each
// origin's frames (server.AckTaker) and tells each origin, with the
// report of what it originated (every reportEvery): one message per node
// pair per report, holding only the sessions whose positions moved. An
// origin then keeps about the frames of the last report and a half
// instead of the whole window. The relay's frames pay nothing for it: the
// positions are noted as the client's acknowledgements are taken (a few
// map writes per 64 frames), and sent from the report's goroutine.

// retainAcksSubject, after the cluster's name and + <node>, carries the
// positions acknowledged in a node's frames.
const retainAcksSubject = ".ra."

// An acknowledgement message: the sending node's name's length (1), the
// name, its incarnation (8), then entries: the user's name's length (1),
// the name, the session's join token (8), the incarnation of the origin
// the position is in (8), the position (8).

// ackedPositions gathers one report's positions by origin node.
type ackedPositions struct {
	byNode map[string]*report
}

// add notes that the client of the session of key has acknowledged the
// frames of origin (an originID) up to seq.
func (a *ackedPositions) add(h *Hub, key creditKey, origin string, seq uint64) {
	i := strings.LastIndexByte(origin, '/')
	if i < 0 {
		return
	}
	node := origin[:i]
	inc, err := strconv.ParseUint(origin[i+1:], 16, 64)
	if err != nil {
		return
	}
	if node == h.self {
		if inc == h.inc { // frames this node relayed, or pushed to a session moved here
			h.relay.trimRetained(key, seq)
		}
		return
	}
	if a.byNode == nil {
		a.byNode = make(map[string]*report)
	}
	r, ok := a.byNode[node]
	if !ok {
		r = h.newReport(h.subject(retainAcksSubject, node))
		a.byNode[node] = r
	}
	r.add(key, inc, seq)
}

// reportAcked takes from each local session granted resume the positions
// its client acknowledged since the last report and sends each origin its
// own, one message per origin node.
func (h *Hub) reportAcked(locals []reportedLocal) {
	var a ackedPositions
	for _, l := range locals {
		at, ok := l.os.(server.AckTaker)
		if !ok {
			continue
		}
		for origin, seq := range at.TakeAcked() {
			a.add(h, l.key, origin, seq)
		}
	}
	for _, r := range a.byNode {
		r.flush()
	}
}

// heardAcked takes another node's acknowledgements of this node's frames.
func (h *Hub) heardAcked(m *nats.Msg) {
	_, _, entries, ok := h.reportFrom(m.Data)
	if !ok {
		return
	}
	eachEntry(entries, 2, func(key creditKey, v []uint64) {
		if originInc, seq := v[0], v[1]; originInc == h.inc {
			h.relay.trimRetained(key, seq)
		}
	})
}

// trimRetained lets go of the frames kept for the session of key up to
// its client's acknowledged position seq.
func (r *relay) trimRetained(key creditKey, seq uint64) {
	rt := r.retainedFor(key, nil)
	if rt == nil {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.dropLocked(func(f keptFrame) bool { return f.seq <= seq })
}
