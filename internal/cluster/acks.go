package cluster

import (
	"encoding/binary"
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
	head   []byte
	byNode map[string][]byte
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
		a.byNode = make(map[string][]byte)
	}
	b, ok := a.byNode[node]
	if !ok {
		b = append([]byte(nil), a.head...)
	}
	b = append(b, byte(len(key.name)))
	b = append(b, key.name...)
	b = binary.BigEndian.AppendUint64(b, key.token)
	b = binary.BigEndian.AppendUint64(b, inc)
	b = binary.BigEndian.AppendUint64(b, seq)
	if len(b) > maxReport {
		h.nc.Publish(h.subject(retainAcksSubject, node), b)
		b = append(b[:0:0], a.head...)
	}
	a.byNode[node] = b
}

// reportAcked takes from each local session granted resume the positions
// its client acknowledged since the last report and sends each origin its
// own, one message per origin node.
func (h *Hub) reportAcked(locals []reportedLocal) {
	a := ackedPositions{head: h.reportHead()}
	for _, l := range locals {
		at, ok := l.os.(server.AckTaker)
		if !ok {
			continue
		}
		for origin, seq := range at.TakeAcked() {
			a.add(h, l.key, origin, seq)
		}
	}
	for node, b := range a.byNode {
		if len(b) > len(a.head) {
			h.nc.Publish(h.subject(retainAcksSubject, node), b)
		}
	}
}

// reportHead is the head of a node's reports: its name's length, the
// name, its incarnation.
func (h *Hub) reportHead() []byte {
	head := []byte{byte(len(h.self))}
	head = append(head, h.self...)
	return binary.BigEndian.AppendUint64(head, h.inc)
}

// heardAcked takes another node's acknowledgements of this node's frames.
func (h *Hub) heardAcked(m *nats.Msg) {
	b := m.Data
	if len(b) < 1 || len(b) < 1+int(b[0])+8 {
		return
	}
	nl := int(b[0])
	node := string(b[1 : 1+nl])
	inc := binary.BigEndian.Uint64(b[1+nl:])
	if node == h.self || !h.reg.leased(node, inc) {
		return
	}
	for b = b[1+nl+8:]; len(b) > 0; {
		ul := int(b[0])
		if ul == 0 || len(b) < 1+ul+24 {
			return
		}
		key := creditKey{string(b[1 : 1+ul]), binary.BigEndian.Uint64(b[1+ul:])}
		originInc := binary.BigEndian.Uint64(b[1+ul+8:])
		seq := binary.BigEndian.Uint64(b[1+ul+16:])
		b = b[1+ul+24:]
		if originInc == h.inc {
			h.relay.trimRetained(key, seq)
		}
	}
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
