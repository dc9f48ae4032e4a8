package server

import (
	"github.com/gochat/chat/internal/protocol"
)

// The client's own frames, counted (the taken feature, with resume;
// docs/PROTOCOL.md, "taken"; issue 22). Without it a line typed while the
// connection was already dead but not yet seen to be (a write that
// succeeded into a socket nobody read, or was cut mid-frame) was lost
// without a word. A session granted it counts the client's messages and
// list requests it has taken (read whole and acted on) across its
// connections, tells the client that count now and then (received, from
// the server) and in resumed, and the client sends again, before anything
// new, exactly the frames after it.

// takeEvery is how many frames a busy client sends before the server
// tells it its count without waiting for its input to pause: what the
// client keeps to send again stays about this many frames.
const takeEvery = 64

// errTakenOver ends a connection that read a frame whole after a resume
// had taken its session over: the frame is neither acted on nor counted,
// and the client sends it again on the connection that holds the session.
var errTakenOver = &endError{reason: reasonTakenOver}

// counting reports whether c counts the client's frames: it was granted
// taken and holds a session.
func (c *conn) counting() bool { return c.taken && c.sess != nil }

// beginTake is called by the serve goroutine once a frame Taken counts
// has been read whole, before it is acted on. It reports whether c may
// act on it: false once a resume has taken the session over (here, or on
// another server that asked for the count: HandOver). From true
// until endTake the session's count is held, so that a takeover (attach)
// sees the frame either done and counted or not begun: the count it puts
// in resumed is exact even while an old, half-open connection is still
// being read. The resume waits for that one frame's delivery: at most
// paceGrace if a recipient has no room for it (killing the old
// connection first would cut the delivery short, and its end would race
// with the attach to end the session).
func (c *conn) beginTake() bool {
	if !c.counting() {
		return true
	}
	s := c.sess
	s.takeMu.Lock()
	if s.handedOver || s.current() != c {
		s.takeMu.Unlock()
		return false
	}
	return true
}

// notTaken is what a handler returns for a frame beginTake refused: a
// connection taken over here ends; one whose session was handed over to
// another server (HandOver) drops the frame and goes on until the move
// ends it (ending it now would end the session, as a user who left).
func (c *conn) notTaken() error {
	if c.sess.current() != c {
		return errTakenOver
	}
	return nil
}

// endTake counts the frame begun with beginTake: it was acted on (if an
// error cut its delivery short, some may have had it, and sending it
// again would double it for them). At takeEvery frames not yet told the
// client is told at once.
func (c *conn) endTake() {
	if !c.counting() {
		return
	}
	s := c.sess
	s.taken++
	s.takenNow.Store(s.taken)
	c.took = s.taken
	s.takeMu.Unlock()
	if s.holds && s.watch != nil {
		s.watch.CountsMoved(s) // committed within milliseconds, not at the next periodic report
	}
	if c.took-c.told >= takeEvery {
		c.tellTaken()
	}
}

// tellTaken sends the client the session's count of its frames taken, if
// it has not been told it yet: as the connection's input pauses (idle),
// and every takeEvery frames. Uncounted, straight to the connection's
// queue: it says nothing a resume needs again (resumed says it).
func (c *conn) tellTaken() {
	if c.took <= c.told || c.sess.holds {
		return // a session that holds its count is told by Commit
	}
	c.told = c.took
	c.push(protocol.AppendCount(nil, protocol.Received, c.took), false)
}

// TakenCounter is implemented by the peers that stand for sessions
// granted resume: a hub that moves a session to another server
// (SessionMover) asks the old one, if it still runs, for its exact count
// of the client's frames taken, and gives it to the new one; without it
// the new one says its count is only a lower bound (~0).
type TakenCounter interface {
	// HandOver stops this server's part of the session from taking the
	// client's frames (what its connection still reads is dropped: the
	// client sends it again where it resumed), once a frame being acted
	// on is done, and returns how many it took.
	HandOver() uint64
	// SetTaken gives a session just made here for a resume the old
	// server's exact count.
	SetTaken(n uint64)
	// Takes reports whether the client asked for taken: only then may
	// its frames be dropped, for it sends them again.
	Takes() bool
}

// Takes implements TakenCounter.
func (s *session) Takes() bool { return s.takes }

// HandOver implements TakenCounter.
func (s *session) HandOver() uint64 {
	s.takeMu.Lock()
	defer s.takeMu.Unlock()
	s.handedOver = true
	return s.taken
}

// SetTaken implements TakenCounter.
func (s *session) SetTaken(n uint64) {
	s.takeMu.Lock()
	defer s.takeMu.Unlock()
	s.taken, s.takenLower = n, false
	s.takenNow.Store(n)
}

// Committer is implemented by the peers that stand for sessions granted
// taken on a cluster's node (docs/SESSIONS.md, "The client's frames"):
// there a frame the node took may have done what the other nodes do not
// know of when the node dies (a message to another of its own users, not
// yet delivered nor reported: it dies with the node, uncounted). So such
// a session tells its client only counts the hub has committed: counts
// taken at one of its reports that every live node has acknowledged,
// after the frames those frames sent the others and the count of what
// the node originated for its own users. A frame not committed is kept
// by the client and, if the node dies, sent again where it resumes: it
// arrives at least once, or it is counted missed; never lost unsaid.
type Committer interface {
	// TakenNow returns the session's count of the client's frames
	// taken, without waiting for a frame being acted on.
	TakenNow() uint64
	// Commit tells the client that its first n frames are committed.
	Commit(n uint64)
}

// holdsTaken reports whether a session c makes tells its client only
// committed counts: c counts the client's frames, on a cluster's node.
func (c *conn) holdsTaken() bool {
	_, moves := c.srv.cfg.Hub.(SessionMover)
	return c.taken && moves
}

// CountWatcher is implemented by a hub that reports its sessions' counts
// to other servers and commits them (a cluster's node): a session whose
// client counts its frames, or reads cursors, tells it when its count of
// the client's frames taken, or of the frames this server originated for
// it, moved, so that the hub reports and commits it within milliseconds
// instead of at its next periodic report: the client keeps, and after a
// node's death sends again (maybe twice), only the lines of those
// milliseconds.
type CountWatcher interface {
	CountsMoved(p Peer)
}

// countWatcher returns the hub as the CountWatcher of a session c makes,
// or nil if the hub is none or c's client neither counts its frames nor
// reads cursors.
func (c *conn) countWatcher() CountWatcher {
	w, ok := c.srv.cfg.Hub.(CountWatcher)
	if !ok || !(c.taken || c.cursor) {
		return nil
	}
	return w
}

// TakenNow implements Committer.
func (s *session) TakenNow() uint64 { return s.takenNow.Load() }

// Commit implements Committer. A commit past the count of the session
// (one made before a move that renumbered it) is not told.
func (s *session) Commit(n uint64) {
	if !s.holds || n > s.takenNow.Load() {
		return
	}
	for {
		old := s.committed.Load()
		if n <= old {
			return
		}
		if s.committed.CompareAndSwap(old, n) {
			break
		}
	}
	if c := s.current(); c != nil && c.taken {
		// Uncounted, straight to the queue, as tellTaken's. A count
		// older than one told already is stale to the client.
		c.push(protocol.AppendCount(nil, protocol.Received, n), false)
	}
}
