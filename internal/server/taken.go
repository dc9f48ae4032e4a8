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
// act on it: false once a resume has taken the session over. From true
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
	if s.current() != c {
		s.takeMu.Unlock()
		return false
	}
	return true
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
	c.took = s.taken
	s.takeMu.Unlock()
	if c.took-c.told >= takeEvery {
		c.tellTaken()
	}
}

// tellTaken sends the client the session's count of its frames taken, if
// it has not been told it yet: as the connection's input pauses (idle),
// and every takeEvery frames. Uncounted, straight to the connection's
// queue: it says nothing a resume needs again (resumed says it).
func (c *conn) tellTaken() {
	if c.took <= c.told {
		return
	}
	c.told = c.took
	c.push(protocol.AppendCount(nil, protocol.Received, c.took), false)
}
