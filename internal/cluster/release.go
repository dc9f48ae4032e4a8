package cluster

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// A session released by its live old node (issue 22; docs/SESSIONS.md,
// "Resume on another node while the old one runs"). When a client resumes
// on another node while its old node runs (it came back through another
// address of its list), the old node still holds what it originated for
// the session and the client has not read: messages from its own users.
// Before, those were dropped with the old session and counted missed from
// the old node's last report, and what its users sent between that report
// and the move was lost without a word. Now the new node asks the old one
// to release the session: the old node ends it at once, sends the new
// node, through its relay queue and numbered as any origin's frames, what
// it originated after the client's position, then whatever its senders
// still push to the old session or send the user until the record moves;
// it answers how many after the position it had let go of (past
// --resume-buffer), and the new node counts only those missed.

// releaseSubject, before the old node's name, carries the requests.
const releaseSubject = ".rl."

// releasedHold is how long a released session's record, which names this
// node until the new node moves it (a compare-and-set, milliseconds),
// is spared by the sweeper (its minRecordAge, 5 s, and kvTimeout, 3 s, for
// the move to be answered): past it, a move that failed left an orphan.
const releasedHold = 10 * time.Second

// A request: the user's name's length (1), the name, the session's join
// token (8), the client's position in the old node's own frames (8), the
// new node's name. The answer: the number let go of (8), or nothing if
// the node holds no such session to release.

func (r *relay) subscribeRelease() error {
	var err error
	r.releaseIn, err = r.nc.Subscribe(r.subject(releaseSubject, r.self), r.h.answerRelease)
	return err
}

// answerRelease releases a local session to the node that asks.
func (h *Hub) answerRelease(m *nats.Msg) {
	b := m.Data
	if len(b) < 1 || len(b) < 1+int(b[0])+16+1 {
		m.Respond(nil)
		return
	}
	nl := int(b[0])
	key := creditKey{string(b[1 : 1+nl]), binary.BigEndian.Uint64(b[1+nl:])}
	pos := binary.BigEndian.Uint64(b[1+nl+8:])
	node := string(b[1+nl+16:])
	h.mu.Lock()
	lu, ok := h.locals[key.name]
	h.mu.Unlock()
	rel, releases := lu.peer.(server.Releaser)
	u, known := h.reg.user(key.name)
	if !ok || lu.token != key.token || !releases || !known || u.token != key.token || u.resume.hash == "" ||
		node == h.self || !validNodeName(node) || !h.live.alive(node, h.liveInc(node)) {
		m.Respond(nil)
		return
	}
	r := h.relay
	rt := r.retainedFor(key, &u.resume)
	forward := func(frame []byte) {
		if queued, _ := rt.send(r, h.self, key, frame); !queued {
			h.quiet.Warn("a released session's frame was dropped: the queue to its node is full", "user", key.name, "peer", node)
		}
	}
	// Under rt's lock, so that what the session kept goes first: the
	// frames its senders push meanwhile wait for the lock in forward.
	rt.mu.Lock()
	rt.from, rt.to, rt.local = h.self, node, nil
	kept, missed, ok := rel.Release(pos, forward)
	for _, f := range kept {
		if !r.outboundTo(node).addSeq(key, rt.seq+1, f) {
			missed++
			continue
		}
		rt.seq++
		rt.keepLocked(f)
	}
	rt.mu.Unlock()
	if !ok {
		m.Respond(nil)
		return
	}
	if lu, ok := h.dropLocal(key.name, func(l localUser) bool { return l.peer == lu.peer }); ok {
		h.mu.Lock()
		if h.released == nil {
			h.released = make(map[uint64]time.Time)
		}
		h.released[key.token] = time.Now() // its record is not an orphan to the sweeper
		h.mu.Unlock()
		h.local.Leave(lu.peer)
		h.changed()
		r.localLeft(lu.peer)
	}
	m.Respond(binary.BigEndian.AppendUint64(nil, missed))
	h.log.Info("released a session to another node", "user", key.name, "to", node, "sent", len(kept), "missed", missed)
}

// askRelease asks node, which holds the session of key and runs, to
// release it to this node (p, made here, has joined the hub), the client
// being at pos in node's own frames; ok is false without an answer (the
// old node died, or is slow), and missed is how many it had let go of.
func (h *Hub) askRelease(key creditKey, node string, pos uint64) (missed uint64, ok bool) {
	req := []byte{byte(len(key.name))}
	req = append(req, key.name...)
	req = binary.BigEndian.AppendUint64(req, key.token)
	req = binary.BigEndian.AppendUint64(req, pos)
	req = append(req, h.self...)
	ctx, cancel := context.WithTimeout(h.ctx, handoverWait)
	defer cancel()
	resp, err := h.nc.RequestWithContext(ctx, h.subject(releaseSubject, node), req)
	if err != nil || len(resp.Data) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(resp.Data), true
}

// releasedTo returns the node a session of key this node released was
// sent to, or "".
func (r *relay) releasedTo(key creditKey) string {
	rt := r.retainedFor(key, nil)
	if rt == nil {
		return ""
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.from != r.self || rt.local != nil {
		return ""
	}
	return rt.to
}
