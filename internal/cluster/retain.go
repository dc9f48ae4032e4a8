package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// Origin retention (issue 22, second part; docs/SESSIONS.md): no frame
// sent to a user whose session was granted resume is lost without a word
// when the user's node dies. Each node (an origin) numbers what it relays
// to each such remote user (the origin sequence, carried in the batch
// entry) and keeps it, for the session's resume window and at most the
// bytes the user's record allows (resumeInfo.retain: the user's node's
// --resume-buffer), until the user's node reports that its client
// acknowledged it (acks.go); the user's node sends its client cursor frames naming
// every origin's position (internal/server, cursor.go). A resume on
// another node asks every live origin to send it what it kept after the
// client's position, in order, ahead of anything new (replay), and from
// then on to send the user's frames there instead of to the node the
// registry still names (its record moves a moment later). What an origin
// had let go of is counted, exactly, and the client told it missed that
// many. Users whose session was not granted resume (contract clients,
// --plain) have no retention: their relay pays one nil check.

// replaySubject, after the cluster's name and + <node>, carries the
// replay requests for a node's kept frames.
const replaySubject = ".rp."

// seqFlag, set in a batch entry's frame length, says an origin sequence
// (8 bytes) follows the length: frames are far shorter than 2 GiB.
const seqFlag = 1 << 31

// replayWait bounds the wait for an origin's answer to a replay request.
const replayWait = 2 * time.Second

// retained is what this node relayed to one remote user's session.
type retained struct {
	window time.Duration
	limit  atomic.Int64  // the most bytes kept: the record's resumeInfo.retain
	total  *atomic.Int64 // the node's bytes kept for all users (relay.retBytes)

	mu     sync.Mutex
	seq    uint64      // frames numbered; guarded by mu
	frames []keptFrame // the frames kept, oldest first, from head; guarded by mu
	head   int         // guarded by mu
	bytes  int         // guarded by mu
	from   string      // frames the registry sends to from are sent to to instead (a resume moved the session); guarded by mu
	to     string      // guarded by mu
	gone   bool        // the session ended; guarded by mu
	// local is the session itself when it moved to this node: frames
	// its senders here send to from are pushed to it at once, in their
	// order (through the node's own subject, a later message sent
	// after the session joined the hub here could overtake them).
	// Guarded by mu.
	local       server.OriginSender
	localOrigin string
}

type keptFrame struct {
	seq   uint64
	at    time.Time
	frame []byte
}

// retainedFor returns what this node keeps for the remote user of key,
// made if ri, the session's record's, is not nil (and its bound then
// updated: a move may change it).
func (r *relay) retainedFor(key creditKey, ri *resumeInfo) *retained {
	r.retMu.Lock()
	defer r.retMu.Unlock()
	rt := r.ret[key]
	if rt == nil && ri != nil {
		if r.ret == nil {
			r.ret = make(map[creditKey]*retained)
		}
		rt = &retained{window: time.Duration(ri.window) * time.Millisecond, total: &r.retBytes}
		r.ret[key] = rt
	}
	if rt != nil && ri != nil && rt.limit.Load() != ri.retain {
		rt.limit.Store(ri.retain)
	}
	return rt
}

// dropRetained lets go of what is kept for the session of name and
// token if it ended (!present). Called with the registry's lock held.
func (r *relay) dropRetained(name string, token uint64, present bool) {
	if present {
		return
	}
	key := creditKey{name, token}
	r.h.moves.forgetOriginated(key)
	r.retMu.Lock()
	rt := r.ret[key]
	delete(r.ret, key)
	r.retMu.Unlock()
	if rt != nil {
		rt.mu.Lock()
		rt.total.Add(-int64(rt.bytes))
		rt.gone, rt.frames, rt.head, rt.bytes = true, nil, 0, 0
		rt.mu.Unlock()
	}
}

// send numbers frame, keeps it, and queues it for node (or where a
// resume moved the session); queued is false if the node's queue is
// full, and local true if the frame went to the session moved here.
func (rt *retained) send(r *relay, node string, key creditKey, frame []byte) (queued, local bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if node == rt.from && rt.local != nil {
		rt.seq++
		rt.keepLocked(frame)
		rt.local.SendFrom(frame, rt.localOrigin, rt.seq) // an error: the session ended
		return true, true
	}
	if node == rt.from && rt.to != "" {
		node = rt.to
	}
	if !r.outboundTo(node).addSeq(key, rt.seq+1, frame) {
		return false, false
	}
	rt.seq++
	rt.keepLocked(frame)
	return true, false
}

// keepLocked keeps frame, numbered rt.seq, letting go of the oldest past
// the window or the record's bound. rt.mu must be held.
func (rt *retained) keepLocked(frame []byte) {
	if rt.gone {
		return
	}
	now := time.Now()
	limit := int(rt.limit.Load())
	if len(frame) > limit {
		// Kept at once, it would be let go of at once: only what is
		// kept before it goes (it is older).
		rt.dropLocked(func(keptFrame) bool { return true })
		return
	}
	rt.frames = append(rt.frames, keptFrame{rt.seq, now, frame})
	rt.bytes += len(frame)
	rt.total.Add(int64(len(frame)))
	rt.dropLocked(func(f keptFrame) bool { return rt.bytes > limit || now.Sub(f.at) > rt.window })
}

// dropLocked lets go of the oldest frames kept while drop says so of the
// oldest. rt.mu must be held.
func (rt *retained) dropLocked(drop func(keptFrame) bool) {
	freed := 0
	for rt.head < len(rt.frames) && drop(rt.frames[rt.head]) {
		n := len(rt.frames[rt.head].frame)
		rt.bytes -= n
		freed += n
		rt.frames[rt.head] = keptFrame{}
		rt.head++
	}
	rt.total.Add(-int64(freed))
	if rt.head == len(rt.frames) {
		rt.frames, rt.head = rt.frames[:0], 0
	} else if rt.head >= 64 && rt.head*2 >= len(rt.frames) {
		n := copy(rt.frames, rt.frames[rt.head:])
		clear(rt.frames[n:])
		rt.frames, rt.head = rt.frames[:n], 0
	}
}

// replay queues for node to every frame kept after after, in order, and
// sends there from now on what the registry would send to from; it
// returns how many frames after after were let go of.
func (rt *retained) replay(r *relay, key creditKey, after uint64, from, node string) (missed uint64) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.from, rt.to, rt.local = from, node, nil
	return rt.replayLocked(after, func(f keptFrame) { r.outboundTo(node).addSeq(key, f.seq, f.frame) })
}

// replayLocked gives send the frames kept after after, in order, and
// returns how many after after were let go of. rt.mu is held.
func (rt *retained) replayLocked(after uint64, send func(keptFrame)) (missed uint64) {
	if after >= rt.seq {
		return 0
	}
	first := rt.seq + 1 // the oldest kept
	if rt.head < len(rt.frames) {
		first = rt.frames[rt.head].seq
	}
	if after+1 < first {
		missed = first - 1 - after
	}
	for _, f := range rt.frames[rt.head:] {
		if f.seq > after {
			send(f)
		}
	}
	return missed
}

// replayLocal pushes to p, a session moved to this node, what this node
// kept of its frames to it after after; it returns how many after after
// were let go of.
func (rt *retained) replayLocal(p server.OriginSender, origin string, after uint64, from, self string) (missed uint64) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	// A sender that found the user on its old node a moment ago sends
	// here, through this node's own subject, until the hub has the
	// session (TakeOver joins it next).
	rt.from, rt.to, rt.local, rt.localOrigin = from, self, p, origin
	return rt.replayLocked(after, func(f keptFrame) { p.SendFrom(f.frame, origin, f.seq) })
}

// addSeq queues frame for the user key as the seq-th frame this node
// sent its session; false if the queue is full.
func (o *outbound) addSeq(key creditKey, seq uint64, frame []byte) bool {
	o.mu.Lock()
	if len(o.buf)+len(frame) > maxOutbound {
		o.mu.Unlock()
		o.r.h.m.dropped.WithLabelValues(o.node).Inc()
		return false
	}
	o.buf = appendSeqEntry(o.buf, key, seq, frame)
	o.entries++
	o.added++
	wake := !o.publishing
	o.publishing = true
	o.mu.Unlock()
	if wake {
		o.wake <- struct{}{}
	}
	return true
}

// appendSeqEntry is appendEntry for a frame that is its origin's seq-th
// (seq > 0) to the user's session: seqFlag set in the frame's length,
// and the sequence after it.
func appendSeqEntry(b []byte, key creditKey, seq uint64, frame []byte) []byte {
	b = append(b, byte(len(key.name)))
	b = append(b, key.name...)
	b = binary.BigEndian.AppendUint64(b, key.token)
	b = binary.BigEndian.AppendUint32(b, uint32(len(frame))|seqFlag)
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, frame...)
}

// originID names a node's incarnation as an origin of frames: its
// sequences start again with a new incarnation.
func originID(node string, inc uint64) string {
	return node + "/" + strconv.FormatUint(inc, 16)
}

// offerFrom offers p a frame relayed from origin as its seq-th (0: not
// numbered).
func offerFrom(p server.Peer, frame []byte, origin string, seq uint64) (<-chan struct{}, error) {
	if seq != 0 {
		if op, ok := p.(server.OriginSender); ok {
			return op.OfferFrom(frame, origin, seq)
		}
	}
	return p.Offer(frame)
}

// A replay request: the user's name's length (1), the name, the session's
// join token (8), the origin's incarnation the position is of (8; 0: no
// position, send nothing kept), the position (8), then the node to send
// to. The answer: the frames let go of (8), or nothing if the origin is
// another incarnation.

func (r *relay) subscribeReplay() error {
	var err error
	r.replayIn, err = r.h.nc.Subscribe(r.h.subject(replaySubject, r.h.self), r.answerReplay)
	if err != nil {
		return err
	}
	return r.subscribeOriginated()
}

// answerReplay answers a replay request (above).
func (r *relay) answerReplay(m *nats.Msg) {
	b := m.Data
	if len(b) < 1 || len(b) < 1+int(b[0])+24+1 {
		return
	}
	nl := int(b[0])
	key := creditKey{string(b[1 : 1+nl]), binary.BigEndian.Uint64(b[1+nl:])}
	inc := binary.BigEndian.Uint64(b[1+nl+8:])
	after := binary.BigEndian.Uint64(b[1+nl+16:])
	node := string(b[1+nl+24:])
	h := r.h
	u, ok := h.reg.user(key.name)
	if !ok || u.token != key.token || u.resume.hash == "" || !validNodeName(node) || !h.live.alive(node, h.liveInc(node)) {
		m.Respond(nil)
		return
	}
	rt := r.retainedFor(key, &u.resume)
	var missed uint64
	if inc == h.inc {
		missed = rt.replay(r, key, after, u.node, node)
	} else {
		rt.replay(r, key, ^uint64(0), u.node, node) // only where to send
	}
	m.Respond(binary.BigEndian.AppendUint64(nil, missed))
}

// replaySelf pushes to p, the session of key moving here from node
// from, what this node kept of its frames to it after the client's
// position pos (nil: none, and nothing is pushed), and sends here from
// now on what its senders send to from; it returns how many this node
// had let go of.
func (h *Hub) replaySelf(p server.Peer, key creditKey, from string, pos map[string]uint64) uint64 {
	rt := h.relay.retainedFor(key, nil)
	op, ok := p.(server.OriginSender)
	if rt == nil || !ok {
		return 0
	}
	after := ^uint64(0)
	if pos != nil {
		after = pos[originID(h.self, h.inc)]
	}
	return rt.replayLocal(op, originID(h.self, h.inc), after, from, h.self)
}

// undoReplaySelf stops pushing to p, a session that did not join here
// after all, what this node's senders send the session of key.
func (h *Hub) undoReplaySelf(p server.Peer, key creditKey) {
	rt := h.relay.retainedFor(key, nil)
	if rt == nil {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if op, ok := p.(server.OriginSender); ok && rt.local == op {
		rt.from, rt.to, rt.local = "", "", nil
	}
}

// liveInc returns the incarnation node is heard in, or 0.
func (h *Hub) liveInc(node string) uint64 {
	h.live.mu.RLock()
	defer h.live.mu.RUnlock()
	if st, ok := h.live.nodes[node]; ok {
		return st.inc
	}
	return 0
}

// gatherReplays asks every live node but this one to send p, the session
// of key just moved here, what it kept after the client's positions pos
// (nil: the client has none, and only where to send is asked), and does
// the same with this node's own; it returns how many frames after the
// positions the origins had let go of. An origin that does not answer
// within replayWait (or any other that ever relayed to the session) is
// counted from its last report (seqs.go).
func (h *Hub) gatherReplays(p server.Peer, key creditKey, from string, window time.Duration, pos map[string]uint64) uint64 {
	self := h.self
	var missed uint64
	h.live.mu.RLock()
	peers := make(map[string]uint64, len(h.live.nodes))
	for node, st := range h.live.nodes {
		// The session's own node relayed nothing to it (what it
		// originated is not kept: SESSIONS.md, "What is missing").
		if node != self && node != from && !st.left && !st.silent {
			peers[node] = st.inc
		}
	}
	h.live.mu.RUnlock()
	ctx, cancel := context.WithTimeout(h.ctx, replayWait)
	defer cancel()
	type answer struct {
		origin   string
		missed   uint64
		answered bool
	}
	answers := make(chan answer, len(peers))
	for node, inc := range peers {
		req := []byte{byte(len(key.name))}
		req = append(req, key.name...)
		req = binary.BigEndian.AppendUint64(req, key.token)
		origin := originID(node, inc)
		if pos == nil {
			inc = 0
		}
		req = binary.BigEndian.AppendUint64(req, inc)
		req = binary.BigEndian.AppendUint64(req, pos[origin])
		req = append(req, self...)
		go func() {
			a := answer{origin: origin}
			resp, err := h.nc.RequestWithContext(ctx, h.subject(replaySubject, node), req)
			if err == nil && len(resp.Data) == 8 {
				a.missed, a.answered = binary.BigEndian.Uint64(resp.Data), true
			} else if err != nil && !errors.Is(err, nats.ErrNoResponders) { // no responders: a node that died a moment ago
				h.quiet.Warn("an origin did not answer a replay request", "user", key.name, "peer", node, "err", err)
			}
			answers <- a
		}()
	}
	answered := make(map[string]bool, len(peers))
	for range peers {
		a := <-answers
		missed += a.missed
		answered[a.origin] = a.answered
	}
	if pos != nil {
		missed += h.countUnanswered(p, key, pos, answered)
	}
	return missed
}
