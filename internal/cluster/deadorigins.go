package cluster

import (
	"encoding/binary"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// Origins that died, as their users' nodes saw them (issue 22, second
// part; docs/SESSIONS.md, "A node that restarted"). An origin keeps what
// it relayed to a remote user for a resume elsewhere, and a resume counts
// missed, for an origin that cannot answer (dead, restarted: a new
// incarnation keeps nothing of its earlier one), what that origin last
// reported it had relayed (seqs.go). It reports every reportEvery: what it
// relayed after its last report was lost without a word when it died
// before the next one. A burst relayed just before a crash was lost
// whole: TestResumeAfterOriginRestarted (ten messages to bob on n1, n3
// killed and started again, n1 killed, bob resuming on n2 having read
// four) had resumed 0 where he missed 6.
//
// The user's node knows better: its session has had every frame of that
// origin that reached it (server.OriginPositions). So when a node sees an
// origin's incarnation go (silent, leaving, or replaced by a new
// incarnation) it reports to every node its local sessions' positions in
// it, and a resume elsewhere counts the furthest of the origin's own
// report and this one. The report is sent again whenever the set of
// incarnations heard changes, so that a node that started since (the
// restarted origin itself, where the client may well resume next) has
// it. Frames that reached no node are still counted only from the
// origin's last report; and a user's node that dies before it sees the
// origin go (3.5 s of silence, or its new incarnation) reports nothing:
// both within the origin's one report.

// deadOriginsSubject, after the cluster's name, carries the positions of
// a node's sessions in an origin that is gone.
const deadOriginsSubject = ".od"

// A report of positions in an origin that is gone: the report's head (the
// reporting node), the origin's name's length (1), the name, its
// incarnation (8), then entries: the user's name's length (1), the name,
// the session's join token (8), the session's position in the origin's
// frames (8).

// subscribeDeadOrigins takes the other nodes' reports and starts this
// node's, until the node stops.
func (r *relay) subscribeDeadOrigins() error {
	sub, err := r.h.nc.Subscribe(r.h.cluster+deadOriginsSubject, r.h.heardDeadOrigin)
	if err != nil {
		return err
	}
	if !r.h.spawn(func() {
		defer sub.Unsubscribe()
		r.h.reportDeadOrigins()
	}) {
		sub.Unsubscribe() // the node is stopping
	}
	return nil
}

// reportDeadOrigins reports, until the node stops, the local sessions'
// positions in the origins not heard any more, each time the incarnations
// heard change (looked at every reportEvery: a few nodes' states).
func (h *Hub) reportDeadOrigins() {
	tick := time.NewTicker(reportEvery)
	defer tick.Stop()
	var heard map[string]uint64
	seen := make(map[string]bool) // every origin heard since this node started
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		now := h.heardIncarnations()
		if maps.Equal(now, heard) {
			continue
		}
		heard = now
		if len(seen) >= 4*maxNodes {
			clear(seen) // a storm of forged nodes: forgetting errs towards reporting less
		}
		for node, inc := range heard {
			seen[originID(node, inc)] = true
		}
		h.reportPositionsIn(heard, seen)
	}
}

// heardIncarnations returns the incarnation of every node heard from
// (this one included), by node.
func (h *Hub) heardIncarnations() map[string]uint64 {
	h.live.mu.RLock()
	defer h.live.mu.RUnlock()
	heard := make(map[string]uint64, len(h.live.nodes)+1)
	for node, st := range h.live.nodes {
		if !st.left && !st.silent {
			heard[node] = st.inc
		}
	}
	heard[h.self] = h.inc
	return heard
}

// reportPositionsIn publishes, for every origin in seen (heard since this
// node started) but not in heard any more, the local sessions' positions
// in its frames: one report per origin. An origin only a client's cursor
// names (a session resumed here from a node this one never heard; or a
// client's invention) is not reported: its position is the client's own.
func (h *Hub) reportPositionsIn(heard map[string]uint64, seen map[string]bool) {
	type local struct {
		key creditKey
		op  server.OriginPositions
	}
	var locals []local
	h.mu.Lock()
	for name, lu := range h.locals {
		if op, ok := lu.peer.(server.OriginPositions); ok {
			locals = append(locals, local{creditKey{name, lu.token}, op})
		}
	}
	h.mu.Unlock()
	reps := make(map[string]*report) // by origin
	counts := make(map[string]int)
	for _, l := range locals {
		for origin, seq := range l.op.Positions() {
			node, inc, ok := parseOriginID(origin)
			if inc2, live := heard[node]; !ok || seq == 0 || !seen[origin] || live && inc2 == inc || !validNodeName(node) {
				continue
			}
			rep := reps[origin]
			if rep == nil {
				head := append(h.reportHead(), byte(len(node)))
				head = append(head, node...)
				head = binary.BigEndian.AppendUint64(head, inc)
				rep = &report{nc: h.nc, subj: h.cluster + deadOriginsSubject, head: head, b: head}
				reps[origin] = rep
			}
			rep.add(l.key, seq)
			counts[origin]++
		}
	}
	for origin, rep := range reps {
		rep.flush()
		h.quiet.Info("reported the sessions' positions in an origin that is gone", "origin", origin, "sessions", counts[origin])
	}
}

// heardDeadOrigin takes another node's report of its sessions' positions
// in an origin that is gone: each is a count of that origin's frames that
// the session had, and a resume counts missed those beyond the client's
// position as it counts the origin's own report (seqs.go, which keeps the
// furthest of both).
func (h *Hub) heardDeadOrigin(m *nats.Msg) {
	reporter, _, b, ok := h.reportFrom(m.Data)
	if !ok || len(b) < 1 || len(b) < 1+int(b[0])+8 {
		return
	}
	node := string(b[1 : 1+int(b[0])])
	inc := binary.BigEndian.Uint64(b[1+int(b[0]):])
	if !validNodeName(node) || node == h.self && inc == h.inc {
		return
	}
	origin := originID(node, inc)
	sessions := h.noteSeqs(origin, b[1+int(b[0])+8:])
	h.quiet.Info("heard a node's positions in an origin that is gone", "peer", reporter, "origin", origin, "sessions", sessions)
}

// parseOriginID splits an originID.
func parseOriginID(origin string) (node string, inc uint64, ok bool) {
	i := strings.LastIndexByte(origin, '/')
	if i < 0 {
		return "", 0, false
	}
	inc, err := strconv.ParseUint(origin[i+1:], 16, 64)
	return origin[:i], inc, err == nil
}
