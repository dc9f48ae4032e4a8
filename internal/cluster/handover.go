package cluster

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// The client's frames taken, handed over (the taken feature; docs/
// SESSIONS.md, "The client's frames"). A resume on another node while the
// session's node still runs (a client that came back through another
// address of its list, its old connection half-open) asks the old node
// for its exact count of the client's frames taken; the old node stops
// taking them (what its old connection still reads is dropped: the client
// sends it again on the new node) and answers. Without an answer (the old
// node died, or is slow) the new node says its count is only a lower
// bound, and the client sends again what the old node had not confirmed.

// handoverSubject, before the old node's name, carries the requests.
const handoverSubject = ".ho."

// handoverWait bounds the wait for the old node's answer: a live node
// answers in milliseconds, and a resume must not wait long on a node that
// died a moment ago (one whose subscription the engine still routes to).
const handoverWait = 250 * time.Millisecond

// A request: the user's name's length (1), the name, the session's join
// token (8). The answer: the count (8), or nothing if the node holds no
// such session (or it does not count).

func (r *relay) subscribeHandover() error {
	var err error
	r.handoverIn, err = r.nc.Subscribe(r.subject(handoverSubject, r.self), r.h.answerHandover)
	return err
}

// answerHandover answers a request for a local session's count.
func (h *Hub) answerHandover(m *nats.Msg) {
	b := m.Data
	if len(b) < 1 || len(b) != 1+int(b[0])+8 {
		return
	}
	name := string(b[1 : 1+int(b[0])])
	token := binary.BigEndian.Uint64(b[1+int(b[0]):])
	h.mu.Lock()
	lu, ok := h.locals[name]
	h.mu.Unlock()
	tc, counts := lu.peer.(server.TakenCounter)
	if !ok || lu.token != token || !counts || !tc.Takes() {
		m.Respond(nil)
		return
	}
	m.Respond(binary.BigEndian.AppendUint64(nil, tc.HandOver()))
	h.log.Info("handed a session's count of the client's frames to another node", "user", name)
}

// askHandover asks node, which holds the session of key and runs, for
// its count of the client's frames taken, and gives it to p, the session
// made here; it reports whether it could, and whether node answered at
// all (silent: it died a moment ago, and is not asked anything more).
func (h *Hub) askHandover(p server.Peer, key creditKey, node string) (ok, answered bool) {
	tc, counts := p.(server.TakenCounter)
	if !counts || !tc.Takes() {
		return false, true
	}
	req := []byte{byte(len(key.name))}
	req = append(req, key.name...)
	req = binary.BigEndian.AppendUint64(req, key.token)
	ctx, cancel := context.WithTimeout(h.ctx, handoverWait)
	defer cancel()
	resp, err := h.nc.RequestWithContext(ctx, h.subject(handoverSubject, node), req)
	if err != nil {
		return false, false
	}
	if len(resp.Data) != 8 {
		return false, true
	}
	tc.SetTaken(binary.BigEndian.Uint64(resp.Data))
	return true, true
}
