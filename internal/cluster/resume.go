package cluster

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

// Sessions that move between nodes (issue 22, second part;
// docs/SESSIONS.md). The record of a user whose session was granted
// resume keeps, besides its node, a hash of the session's token and the
// session's resume window. A resume that reaches another node (the
// session's node died, or the client simply came back elsewhere) proves
// the token against that hash and moves the record to its own node with
// one compare-and-set, at once: no lease has to expire first. The node
// that held the session, if alive, sees its record taken in its watch and
// lets its connection go without a line on stdout, as a local takeover
// does. A record whose node died stays, listed and holding its name and
// its place, for its window after the node was last heard; the sweeper
// removes it afterwards.

var _ server.SessionMover = (*Hub)(nil)

// resumeInfo is what the record of a session granted resume keeps for a
// resume on another node. The zero value stands for a session without
// resume (the record is then written in the older format).
type resumeInfo struct {
	hash   string // SHA-256 of the session token, 32 raw bytes; "" without resume
	window int64  // the resume window, ms
	// retain is the most bytes of the session's frames each other node
	// may keep for it (retain.go): the user's node's --resume-buffer,
	// or 0 for a client without cursors, which cannot name a position to
	// replay from. It travels with the record because the origins read
	// the record anyway to relay to the user, and it changes only when
	// the record does (a move).
	retain int64
}

// The user record of a session granted resume comes in two versions,
// told apart by their first field (the first version of all records starts
// with an incarnation in hex, which never holds a 'v'): "v2" (no retain
// bound: an origin keeps server.DefaultResumeBuffer, as before) and "v3",
// which this version writes. A node of an older version refuses a record
// it cannot read as malformed (it cannot resume it) rather than misreading
// it.
const (
	resumePrefix   = "v2 "
	resumePrefixV3 = "v3 "
)

func isResumeValue(v []byte) bool {
	return bytes.HasPrefix(v, []byte(resumePrefix)) || bytes.HasPrefix(v, []byte(resumePrefixV3))
}

// value returns the record of a session granted resume: "v3 <incarnation>
// <join token> <window ms> <retain bytes> <token hash> <node>".
func (ri resumeInfo) value(inc, token uint64, node string) []byte {
	return fmt.Appendf(nil, resumePrefixV3+"%x %x %d %d %x %s", inc, token, ri.window, ri.retain, ri.hash, node)
}

func parseResumeUser(v []byte) (userEntry, error) {
	fields, retain := 5, int64(server.DefaultResumeBuffer)
	if bytes.HasPrefix(v, []byte(resumePrefixV3)) {
		fields = 6
	}
	f := strings.SplitN(string(v[len(resumePrefix):]), " ", fields)
	if len(f) != fields {
		return userEntry{}, fmt.Errorf("user entry: %q", v)
	}
	var err5 error
	if fields == 6 {
		var r uint64
		r, err5 = strconv.ParseUint(f[3], 10, 31)
		retain = int64(r)
		f = append(f[:3], f[4:]...)
	}
	inc, err1 := strconv.ParseUint(f[0], 16, 64)
	token, err2 := strconv.ParseUint(f[1], 16, 64)
	window, err3 := strconv.ParseUint(f[2], 10, 63)
	hash, err4 := hex.DecodeString(f[3])
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil || len(hash) != sha256.Size {
		return userEntry{}, fmt.Errorf("user entry: %q: %v", v, err)
	}
	return userEntry{node: f[4], inc: inc, token: token, resume: resumeInfo{hash: string(hash), window: int64(window), retain: retain}}, nil
}

// resumeOf returns what the record of p keeps for a resume elsewhere: p is
// a session granted resume, or the record keeps nothing.
func resumeOf(p server.Peer) resumeInfo {
	r, ok := p.(server.Resumable)
	if !ok {
		return resumeInfo{}
	}
	t := r.Token()
	sum := sha256.Sum256(t[:])
	retain := int64(server.DefaultResumeBuffer)
	if rt, ok := p.(server.Retainer); ok {
		retain = int64(rt.Retain())
	}
	return resumeInfo{hash: string(sum[:]), window: r.Window().Milliseconds(), retain: retain}
}

// errNoPlace stands for the place of a session moved here that has none
// yet (its move is under way).
var errNoPlace = errors.New("no place yet")

// moves is the hub's knowledge of the nodes that died, for the records
// they left: such a record stays for its window after its node was last
// heard.
type moves struct {
	born time.Time // this node's start: a node that died before it was heard then at the latest

	mu         sync.Mutex
	gone       map[string]goneNode             // by node; guarded by mu
	originated map[creditKey]originatedCount   // other nodes' reports (originated.go); guarded by mu
	seqs       map[creditKey]map[string]uint64 // other nodes' origin sequences, by origin id (seqs.go); guarded by mu
	// testHookSeqs, if set, is called (mu held) once a report of
	// origin sequences is taken.
	testHookSeqs func()
	// testHookMove, if set, is called as moveRecords starts (tests
	// change the registry under it); guarded by mu.
	testHookMove func(name string)
}

type goneNode struct {
	inc  uint64
	seen time.Time
}

func newMoves() *moves { return &moves{born: time.Now(), gone: make(map[string]goneNode)} }

// nodeGone notes that node's lease, of incarnation inc, is gone; it was
// last heard at seen (zero: never heard by this node).
func (m *moves) nodeGone(node string, inc uint64, seen time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.gone) >= maxNodes {
		clear(m.gone) // a storm of forged nodes: forgetting errs towards removing records sooner
	}
	m.gone[node] = goneNode{inc, seen}
}

// lastSeen returns when node was last heard, if this node keeps it.
func (l *liveness) lastSeen(node string) time.Time {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if st, ok := l.nodes[node]; ok {
		return st.seen
	}
	return time.Time{}
}

// heardWithin reports whether node, in incarnation inc, was heard (or is
// alive) within the window of record u: a session it held may still be
// resumed.
func (h *Hub) heardWithin(u userEntry) bool {
	window := time.Duration(u.resume.window) * time.Millisecond
	if h.live.alive(u.node, u.inc) {
		return true
	}
	seen := time.Time{}
	h.live.mu.RLock()
	if st, ok := h.live.nodes[u.node]; ok && st.inc == u.inc {
		seen = st.seen
	}
	h.live.mu.RUnlock()
	if seen.IsZero() {
		h.moves.mu.Lock()
		if g, ok := h.moves.gone[u.node]; ok && g.inc == u.inc {
			seen = g.seen
		}
		h.moves.mu.Unlock()
	}
	if seen.IsZero() || seen.Before(h.moves.born) {
		seen = h.moves.born
	}
	return time.Since(seen) < window
}

// awayElsewhere reports whether u is the record of a session granted
// resume whose node is not heard from but may still be resumed here: it
// is listed, keeps its name and its place, and is not swept.
func (h *Hub) awayElsewhere(u userEntry) bool {
	return u.resume.hash != "" && h.heardWithin(u)
}

// spareResumable returns recs without the records (users and places) of
// sessions of other nodes that may still be resumed: the sweeper leaves
// them for their window.
func (h *Hub) spareResumable(recs []pendingDelete) []pendingDelete {
	reg := h.reg
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	var resumable map[uint64]bool // the join tokens of the sessions that may still be resumed
	for _, u := range reg.users {
		if u.resume.hash != "" && !(u.node == h.self && u.inc == h.inc) && h.heardWithin(u) {
			if resumable == nil {
				resumable = make(map[uint64]bool)
			}
			resumable[u.token] = true
		}
	}
	if resumable == nil {
		return recs
	}
	return slices.DeleteFunc(recs, func(p pendingDelete) bool {
		switch {
		case strings.HasPrefix(p.key, "u."):
			raw, err := b64.DecodeString(p.key[2:])
			u, ok := reg.users[string(raw)]
			return err == nil && ok && u.rev == p.rev && resumable[u.token]
		case strings.HasPrefix(p.key, "s."):
			i, err := strconv.Atoi(p.key[2:])
			s, ok := reg.slots[i]
			return err == nil && ok && s.rev == p.rev && resumable[s.token]
		}
		return false
	})
}

// TakeOver implements server.SessionMover: p, a session this node's
// server has just made for a resume, takes over the session of its name
// that another node holds (or held, if that node died), proving token
// against the hash its record keeps. It returns server.ErrNoSession if
// the cluster holds no session of that name and token that may still be
// resumed.
//
// The session stands here at once, and its record (then its place under
// the cap) is moved to this node by a compare-and-set on the revision the
// cache knows, in the background: the registry's stream may have had its
// leader on the node that died, and its writes then wait for an election
// (4-9 s; TestResumeAfterNodeKilled saw a resume take 6.6 s with the
// write first, and the client give up on the node meanwhile). A
// compare-and-set that loses (a concurrent resume of the same session
// elsewhere, a leave) lets the session go here as one that moved away:
// the client resumes again, and only one node can win the record.
func (h *Hub) TakeOver(p server.Peer, token protocol.Token, pos map[string]uint64) (missed uint64, err error) {
	if h.fenced.Load() {
		return 0, fmt.Errorf("%w: this node is cut off from the cluster", server.ErrUnavailable)
	}
	name := p.Name()
	sum := sha256.Sum256(token[:])
	u, ok := h.reg.user(name)
	if !ok || u.resume.hash == "" || subtle.ConstantTimeCompare([]byte(u.resume.hash), sum[:]) != 1 {
		return 0, server.ErrNoSession
	}
	if u.node == h.self && u.inc == h.inc {
		return 0, server.ErrNoSession // this node's own: its server holds it, or it is over
	}
	if !h.heardWithin(u) {
		return 0, fmt.Errorf("%w: its node was last heard more than its window ago", server.ErrNoSession)
	}
	// This node's own kept frames first (a sender here that still finds
	// the user on its old node sends them here from now on), then the
	// session joins the hub here.
	h.mu.Lock()
	_, busy := h.locals[name]
	h.mu.Unlock()
	if busy { // a resume of the session under way here, or another's
		return 0, server.ErrNoSession
	}
	key := creditKey{name, u.token}
	oldAlive := h.live.alive(u.node, u.inc)
	if oldAlive {
		handed, answered := h.askHandover(p, key, u.node)
		if handed {
			h.log.Info("the old node handed over its count of the client's frames", "user", name, "from", u.node)
		}
		oldAlive = answered // a node silent for handoverWait is not asked to release the session either
	}
	missed = h.replaySelf(p, key, u.node, pos)
	h.mu.Lock()
	if _, ok := h.locals[name]; ok {
		h.mu.Unlock()
		h.undoReplaySelf(p, key)
		return 0, server.ErrNoSession
	}
	if err := h.local.Join(p, math.MaxInt); err != nil {
		h.mu.Unlock()
		h.undoReplaySelf(p, key)
		return 0, err
	}
	// The revisions are the old record's until the writes are answered
	// (a leave meanwhile deletes nothing: its revision is gone by then,
	// and the sweeper removes a record no session holds).
	h.locals[name] = localUser{name: name, peer: p, token: u.token, slot: -1, userRev: u.rev}
	h.mu.Unlock()
	h.changed()
	// The origins send their kept frames, and from now on the user's,
	// here before the record moves: nothing they send after it can
	// overtake what they replay.
	missed += h.gatherReplays(p, creditKey{name, u.token}, u.node, time.Duration(u.resume.window)*time.Millisecond, pos)
	if pos != nil {
		// What the old node originated itself: sent here by the old node
		// if it runs (release.go), else counted to within its last
		// report.
		m, released := uint64(0), false
		if oldAlive {
			m, released = h.askRelease(key, u.node, pos[server.LocalPosition])
		}
		if !released {
			m = h.moves.originatedMissed(key, u.node, pos[server.LocalPosition])
		}
		missed += m
	}
	h.log.Info("session moved here", "user", name, "from", u.node, "missed", missed)
	h.spawn(func() { h.moveRecords(p, u) })
	return missed, nil
}

// moveRecords moves the record of u, the session p took over, to this
// node, then its place under the cap. If the record cannot be had, p lets
// go of the session.
func (h *Hub) moveRecords(p server.Peer, u userEntry) {
	name, token := p.Name(), u.token // u becomes what the engine holds, maybe another session's
	h.moves.mu.Lock()
	hook := h.moves.testHookMove
	h.moves.mu.Unlock()
	if hook != nil {
		hook(name)
	}
	sum := u.resume.hash
	var rev uint64
	var err error
	for attempt := 0; ; attempt++ {
		moved := u
		moved.node, moved.inc = h.self, h.inc
		if _, ok := p.(server.Retainer); ok {
			moved.resume.retain = resumeOf(p).retain // this node's bound, and whether this client reads cursors
		}
		rev, _, err = h.write(writeOp{key: userKey(name), val: moved.value(), expect: u.rev}, nil)
		if err == nil {
			u = moved
			break
		}
		if !isExists(err) || attempt == 3 {
			break
		}
		// The cache was behind: ask the engine what holds the name.
		var ok bool
		var rerr error
		u, ok, rerr = h.readUser(name)
		if rerr != nil {
			err = rerr
			break
		}
		if !ok || u.resume.hash != sum || u.node == h.self && u.inc == h.inc {
			err = fmt.Errorf("the record is another's now")
			break
		}
	}
	if err != nil {
		h.log.Warn("a session moved here could not take its record; letting it go", "user", name, "err", err)
		h.movedAway(name, token)
		return
	}
	u.rev, u.created = rev, time.Now().UnixNano()
	slot, slotRev, err := h.moveSlot(u.token)
	if err != nil {
		h.log.Warn("a session moved here found no place under the cap; letting it go", "user", name, "err", err)
		h.del.add(userKey(name), rev)
		h.movedAway(name, token)
		return
	}
	h.mu.Lock()
	lu, ok := h.locals[name]
	if !ok || lu.peer != p {
		h.mu.Unlock()
		// Left meanwhile.
		h.del.add(userKey(name), rev)
		h.del.add(slotKey(slot), slotRev)
		return
	}
	lu.slot, lu.userRev, lu.slotRev = slot, rev, slotRev
	h.locals[name] = lu
	h.mu.Unlock()
	h.reg.recordJoin(name, u, slot, slotEntry{node: u.node, inc: u.inc, token: u.token, rev: slotRev, created: u.created})
	h.changed()
}

// readUser reads name's record from the engine.
func (h *Hub) readUser(name string) (userEntry, bool, error) {
	ctx, cancel := h.reg.kvCtx()
	defer cancel()
	e, err := h.reg.names.Get(ctx, userKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return userEntry{}, false, nil
	}
	if err != nil {
		return userEntry{}, false, err
	}
	u, err := parseUser(e.Value())
	if err != nil {
		return userEntry{}, false, nil
	}
	u.rev = e.Revision()
	return u, true, nil
}

// moveSlot moves the place under the cap of the session of join token to
// this node (compare-and-set on its revision). A place the sweeper took
// away meanwhile is replaced by a free one.
func (h *Hub) moveSlot(token uint64) (int, uint64, error) {
	val := slotEntry{node: h.self, inc: h.inc, token: token}.value()
	h.reg.mu.RLock()
	slot, rev := -1, uint64(0)
	for i, s := range h.reg.slots {
		if !s.placeholder() && s.token == token {
			slot, rev = i, s.rev
			break
		}
	}
	h.reg.mu.RUnlock()
	if slot >= 0 {
		nrev, _, err := h.write(writeOp{key: slotKey(slot), val: val, expect: rev}, nil)
		if err == nil {
			return slot, nrev, nil
		}
		if !isExists(err) {
			return 0, 0, err
		}
	}
	return h.takeSlot(h.reg.maxClients, token)
}

// movedAway lets go of the local user name, whose record another node
// took over (a resume there) while this node held the session of join
// token: the session goes on there, so nothing is deleted from the
// registry and nothing is printed; the session's connection, if any, is
// closed as a local takeover closes it.
func (h *Hub) movedAway(name string, token uint64) {
	h.mu.Lock()
	delete(h.released, token) // its record moved (release.go)
	h.mu.Unlock()
	lu, ok := h.dropLocal(name, func(lu localUser) bool { return lu.token == token })
	if !ok {
		return
	}
	h.local.Leave(lu.peer)
	h.changed()
	h.relay.localLeft(lu.peer)
	h.log.Info("session moved to another node", "user", name)
	if m, ok := lu.peer.(server.Movable); ok {
		m.MovedAway()
	}
}

// userMoved is called, under the registry's lock, when the record of a
// session moved from one node to another (the same join token): no
// presence notice (the user never left), and the senders waiting on its
// old node are released.
func (h *Hub) userMoved(name string, old, u userEntry) {
	h.changed()
	h.relay.userChanged(name, u, false)
	h.relay.replayOnMove(creditKey{name, u.token}, old.node, u.node) // seqs.go
	if old.node != h.self {
		h.quiet.Info("a session moved to another node", "user", name, "from", old.node, "to", u.node)
	}
	if old.node == h.self && old.inc == h.inc && u.node != h.self {
		// The hub's lock is taken after the registry's nowhere else:
		// let go of the session from a goroutine of the node's.
		h.spawn(func() { h.movedAway(name, u.token) })
	}
}
