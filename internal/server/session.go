package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Sessions that outlive their connection (the resume extension, issue 22;
// docs/PROTOCOL.md, "resume"). A connection that was granted resume joins
// the hub through a session, which stays in the hub when the connection is
// lost: the user keeps the name and stays in the list, and what is sent to
// it is numbered and kept until the client acknowledges it, so that a new
// connection presenting the session's token takes the session over and
// gets, in order and once, what the old one did not deliver. Connections
// that did not ask for resume never meet any of this: they are the hub's
// peers themselves, as before.

// Defaults of the resume extension (docs/OPERATIONS.md).
const (
	// DefaultResumeWindow is how long a session whose connection was
	// lost waits for a resume before it ends (issue 22: 30 s).
	DefaultResumeWindow = 30 * time.Second
	// DefaultResumeBuffer bounds the bytes of frames kept for one session
	// that its client has not acknowledged. With acknowledgements every
	// 64 frames or 200 ms, a connected session keeps a few KiB; the bound
	// matters while the connection is away: 1 MiB holds 30 s of 20
	// messages a second of up to 1.7 KB each.
	DefaultResumeBuffer = 1 << 20
)

// resumeBuffer returns the bound on the bytes kept for a session.
func (c *Config) resumeBuffer() int {
	if c.ResumeBuffer <= 0 {
		return DefaultResumeBuffer
	}
	return c.ResumeBuffer
}

// frameResumeFailed answers a resume that cannot be granted.
var frameResumeFailed = protocol.AppendEmpty(nil, protocol.ResumeFailed)

// session is a joined user that was granted resume: the hub's peer for it,
// whatever connection it has at the moment.
type session struct {
	srv      *Server
	name     string
	token    protocol.Token
	presence bool   // the joining connection asked for presence (a subscriber while the session lasts)
	takes    bool   // the joining (or resuming, for a session moved here) connection asked for taken (taken.go)
	origin   uint64 // the id of the connection that joined

	mu      sync.Mutex
	conn    *conn // the connection attached, nil while away; guarded by mu
	told    bool  // the session frame was sent; guarded by mu
	ended   bool  // the session is over for good; guarded by mu
	evict   error // the registry evicted the session while it was away; guarded by mu
	timer   *time.Timer
	armed   bool // timer will run expire; guarded by mu
	last    uint64
	first   uint64   // the number of kept[head]; guarded by mu
	kept    [][]byte // the frames numbered first..last not yet acknowledged nor dropped, from head on; guarded by mu
	head    int      // guarded by mu
	bytes   int      // the bytes of the kept frames; guarded by mu
	lostAt  time.Time
	org     *origins           // where the frames came from, for a client that asked for cursor frames (cursor.go); nil otherwise
	missed  uint64             // frames no origin kept, for the resumed of a session moved here; guarded by mu
	forward func(frame []byte) // where this server's frames go once the session was released (Release); guarded by mu

	// The client's frames taken (taken.go). takeMu is held from a
	// frame's beginTake to its endTake, and by attach: taken away from
	// one connection, counted in full or not begun. Lock order: takeMu,
	// then mu.
	takeMu     sync.Mutex
	taken      uint64 // guarded by takeMu
	takenLower bool   // taken is only a lower bound (a session moved from a node whose count was not known exactly) until a resumed says so; guarded by takeMu
	handedOver bool   // another server asked for the count (HandOver): no frame is taken here until a resume here; guarded by takeMu

	// The count as the other nodes of a cluster know it (taken.go,
	// Committer).
	holds     bool          // the client is told only committed counts; set at construction
	watch     CountWatcher  // told when a count the hub reports moved (nil: none); set at construction
	takenNow  atomic.Uint64 // taken, as last counted: read by the hub's reports without takeMu
	committed atomic.Uint64 // the count the hub last committed
}

// newSession returns a session for conn c, which is about to join as name.
func newSession(c *conn) *session {
	s := &session{srv: c.srv, name: c.name, presence: c.ext.presence, origin: c.id, first: 1, takes: c.taken, holds: c.holdsTaken(), watch: c.countWatcher()}
	if c.cursor {
		s.org = newOrigins()
	}
	if _, err := rand.Read(s.token[:]); err != nil {
		panic(err) // crypto/rand never fails on the systems Go supports
	}
	return s
}

// Name implements Peer.
func (s *session) Name() string { return s.name }

// Send implements Peer.
func (s *session) Send(frame []byte) error {
	_, err := s.push(frame, false)
	return err
}

// Offer implements Peer.
func (s *session) Offer(frame []byte) (<-chan struct{}, error) { return s.push(frame, true) }

// SendFrom implements OriginSender.
func (s *session) SendFrom(frame []byte, origin string, seq uint64) error {
	_, err := s.pushFrom(frame, false, origin, seq)
	return err
}

// Originated implements OriginSender.
func (s *session) Originated() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.org == nil {
		return 0
	}
	return s.org.local
}

// OfferFrom implements OriginSender.
func (s *session) OfferFrom(frame []byte, origin string, seq uint64) (<-chan struct{}, error) {
	return s.pushFrom(frame, true, origin, seq)
}

// OpenFile implements Peer: a file goes to the connection attached, and a
// session that is away gets none (files are never kept for a resume; the
// sender learns it as from a user who left).
func (s *session) OpenFile(head FileHead, cancel <-chan struct{}) (FileStream, error) {
	c := s.current()
	if c == nil {
		return nil, ErrPeerGone
	}
	return c.OpenFile(head, cancel)
}

// Evict implements Evictable: the session ends for good, at once if it is
// away, through its connection's end otherwise.
func (s *session) Evict(cause error) {
	s.mu.Lock()
	c := s.conn
	if c == nil && s.armed {
		// The registry may hold its locks: the timer's goroutine ends
		// the session, which leaves the hub.
		s.evict = cause
		s.timer.Reset(0)
	}
	s.mu.Unlock()
	if c != nil {
		c.kill(reasonEvicted, cause)
	}
}

// Token implements Resumable.
func (s *session) Token() protocol.Token { return s.token }

// Window implements Resumable.
func (s *session) Window() time.Duration { return s.srv.cfg.ResumeWindow }

// MovedAway implements Movable: a resume on another server took the
// session over.
func (s *session) MovedAway() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	c := s.endMovedLocked()
	s.mu.Unlock()
	s.finishMoved(c)
}

// endMovedLocked ends the session, which moved to another server, and
// returns its connection, if any. s.mu is held.
func (s *session) endMovedLocked() *conn {
	s.ended = true
	c := s.conn
	s.conn = nil
	if s.armed && s.timer.Stop() {
		s.armed = false
		s.srv.sessions.wg.Done()
	}
	s.kept, s.head, s.bytes = nil, 0, 0
	return c
}

// finishMoved does what is left once endMovedLocked has ended the
// session: it leaves the server's sessions, and its connection c is
// closed as a takeover closes it.
func (s *session) finishMoved(c *conn) {
	s.srv.sessions.remove(s)
	if s.presence {
		pr := &s.srv.presence
		pr.mu.Lock()
		pr.subscribers--
		pr.mu.Unlock()
	}
	s.srv.cfg.Logger.Info("session moved to another server", "user", s.name)
	if c != nil {
		c.kill(reasonTakenOver, nil)
	}
}

// Releaser is implemented by the peers that stand for sessions whose
// clients read cursors: a hub that moves such a session to another server
// while this one runs (a resume there) has it let go at once and hand
// over what this server originated for it and kept after the client's
// position, so that it is delivered there instead of counted missed, and
// what this server's senders still push to it afterwards (they found it
// a moment before).
type Releaser interface {
	// Release ends the session as MovedAway does and returns the frames
	// this server originated for it after the client's position pos (in
	// its own frames: the cursor's "-"), in order, and how many after pos
	// it had let go of; from now on forward gets every frame of this
	// server pushed to it. ok is false if the session was over or has
	// no cursors (then nothing is done).
	Release(pos uint64, forward func(frame []byte)) (kept [][]byte, missed uint64, ok bool)
}

// Release implements Releaser.
func (s *session) Release(pos uint64, forward func(frame []byte)) (kept [][]byte, missed uint64, ok bool) {
	s.mu.Lock()
	if s.ended || s.org == nil {
		s.mu.Unlock()
		return nil, 0, false
	}
	for i := s.head; i < len(s.kept); i++ {
		if o := s.org.from[i]; o.origin == "" && o.seq > pos {
			kept = append(kept, s.kept[i])
		}
	}
	if s.org.local > pos {
		missed = s.org.local - pos - uint64(len(kept))
	}
	s.forward = forward
	c := s.endMovedLocked()
	s.mu.Unlock()
	s.finishMoved(c)
	return kept, missed, true
}

// current returns the connection attached, or nil.
func (s *session) current() *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// push numbers a counted frame, keeps it until it is acknowledged, and
// queues it for the connection attached, if any. A paced push the
// connection has no room for is neither queued nor numbered: the caller
// offers it again when retry is closed.
func (s *session) push(frame []byte, paced bool) (retry <-chan struct{}, err error) {
	return s.pushFrom(frame, paced, "", 0)
}

// pushFrom is push for a frame that came from origin (another server of
// the hub; "" for this one) as the seq-th it sent the session (0: not
// numbered). A frame of an origin already past seq is dropped: a replay
// after a move may bring it twice.
func (s *session) pushFrom(frame []byte, paced bool, origin string, seq uint64) (retry <-chan struct{}, err error) {
	s.mu.Lock()
	if s.ended {
		forward := s.forward
		s.mu.Unlock()
		if forward != nil && origin == "" {
			forward(frame) // released to another server (Release)
			return nil, nil
		}
		return nil, ErrPeerGone
	}
	c := s.conn
	if s.org != nil {
		if s.org.seen(origin, seq) {
			s.mu.Unlock()
			return nil, nil
		}
		if cur := s.org.cursorBefore(origin); cur != nil && c != nil {
			// Uncounted, never refused for room: it is small, and
			// says where the frames after it come from.
			c.q.push(cur, false)
		}
	}
	if c != nil {
		retry, err = c.q.push(frame, paced)
		if retry != nil {
			s.mu.Unlock()
			return retry, nil
		}
	}
	// Kept even if the queue refused it (it is closing): a resume
	// replays it.
	s.keepLocked(frame, origin, seq)
	s.mu.Unlock()
	if origin == "" && s.org != nil && s.watch != nil {
		s.watch.CountsMoved(s) // one this server originated: reported within milliseconds
	}
	if errors.Is(err, ErrSlowConsumer) {
		c.kill(reasonSlowConsumer, fmt.Errorf("send queue over %d bytes", s.srv.cfg.SendQueueBytes))
		return nil, err
	}
	return nil, nil
}

// keepLocked numbers frame and keeps it, dropping the oldest frames kept
// past the resume buffer: a resume that needs them is told they are
// missed.
func (s *session) keepLocked(frame []byte, origin string, seq uint64) {
	s.last++
	s.kept = append(s.kept, frame)
	if s.org != nil {
		s.org.kept(origin, seq)
	}
	s.bytes += len(frame)
	limit := s.srv.cfg.resumeBuffer()
	for s.bytes > limit && s.head < len(s.kept) {
		s.dropHeadLocked()
	}
}

// dropHeadLocked lets go of the oldest frame kept.
func (s *session) dropHeadLocked() {
	s.bytes -= len(s.kept[s.head])
	s.kept[s.head] = nil
	s.head++
	s.first++
	if s.head == len(s.kept) {
		s.kept, s.head = s.kept[:0], 0
		if s.org != nil {
			s.org.compact(len(s.org.from), 0)
		}
	} else if s.head >= 64 && s.head*2 >= len(s.kept) {
		if s.org != nil {
			s.org.compact(s.head, len(s.kept)-s.head)
		}
		n := copy(s.kept, s.kept[s.head:])
		clear(s.kept[n:])
		s.kept, s.head = s.kept[:n], 0
	}
}

// ack lets go of the frames numbered up to n, which the client says it
// has received. A number past the last frame sent is a breach of the
// protocol.
func (s *session) ack(n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > s.last {
		return fmt.Errorf("%w: received %d of %d frames", protocol.ErrMalformed, n, s.last)
	}
	s.noteAckedLocked(n)
	for s.first <= n && s.head < len(s.kept) {
		s.dropHeadLocked()
	}
	if s.first <= n { // all it had kept is acknowledged, and more were dropped
		s.first = n + 1
	}
	return nil
}

// errResume is the cause of a refused resume, for the log.
var errResume = errors.New("resume refused")

// attach makes c the session's connection, the client having received n
// counted frames: it is sent the session frame (the first time) or
// resumed with the number of frames missed, then every frame kept after
// the n-th, in order. It returns the number missed.
func (s *session) attach(c *conn, n uint64) (old *conn, missed uint64, err error) {
	s.takeMu.Lock() // an old connection acting on a frame finishes it first
	defer s.takeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, 0, fmt.Errorf("%w: the session is over", errResume)
	}
	if n > s.last {
		return nil, 0, fmt.Errorf("%w: received %d of %d frames", errResume, n, s.last)
	}
	s.noteAckedLocked(n)
	for s.first <= n && s.head < len(s.kept) {
		s.dropHeadLocked()
	}
	if n+1 < s.first {
		missed = s.first - 1 - n
	}
	missed += s.missed
	s.missed = 0
	if s.armed && s.timer.Stop() {
		s.armed = false
		s.srv.sessions.wg.Done()
	}
	var lead []byte
	c.took, c.told = s.taken, s.taken
	s.handedOver = false // resumed here after all
	var told []byte
	if s.holds && c.taken && s.told {
		// The count resumed says is exact, but the client keeps the
		// frames it does not confirm (taken.go, Committer): tell it what
		// is committed, which a commit made while no connection was
		// attached did not.
		if n := s.committed.Load(); n > 0 {
			told = protocol.AppendCount(nil, protocol.Received, n)
		}
	}
	switch {
	case s.told && c.taken:
		lead = protocol.AppendResumed(nil, missed, s.taken, !s.takenLower)
		s.takenLower = false
	case s.told:
		lead = protocol.AppendCount(nil, protocol.Resumed, missed)
	default:
		lead = protocol.AppendSession(nil, s.token, uint64(s.srv.cfg.ResumeWindow/time.Millisecond))
		s.told = true
	}
	_, err = c.q.push(lead, false)
	if told != nil && err == nil {
		_, err = c.q.push(told, false)
	}
	var replay *cursorReplay
	if s.org != nil && c.cursor && s.head < len(s.kept) {
		replay = s.org.replayFrom(s.head)
	}
	for i, f := range s.kept[s.head:] {
		if err != nil {
			break
		}
		if replay != nil {
			if cur := replay.before(s.head + i); cur != nil {
				_, err = c.q.push(cur, false)
			}
		}
		// Within the resume buffer, below the send queue's bound
		// (gochatd keeps it under half of it).
		_, err = c.q.push(f, false)
	}
	if err != nil {
		// A frame the client will not get, and will not count: the
		// session cannot go on over c, whose end ends it.
		c.kill(reasonSlowConsumer, fmt.Errorf("resuming: %w", err))
	}
	old, s.conn = s.conn, c
	return old, missed, nil
}

// detach is called as connection c ends for reason. It reports whether the
// session goes on: c was not its connection any more (taken over), or c
// was lost and the session now waits for a resume (away). Otherwise the
// session is over and the caller ends it (end).
func (s *session) detach(c *conn, reason closeReason) (goesOn, away bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != c || s.ended {
		// Taken over; or ended by another path, which ends it.
		return true, false
	}
	s.conn = nil
	if !lostConnection(reason) || s.srv.shutting.Load() {
		s.ended = true
		return false, false
	}
	s.lostAt = time.Now()
	s.armed = true
	s.srv.sessions.wg.Add(1)
	if s.timer == nil {
		s.timer = time.AfterFunc(s.srv.cfg.ResumeWindow, s.expire)
	} else {
		s.timer.Reset(s.srv.cfg.ResumeWindow)
	}
	return true, true
}

// lostConnection reports whether a connection that ended for reason was
// lost, rather than ended by its user or cut off by the server's policy
// (a slow consumer, a flood, a breach of the protocol): a session waits
// for a resume only after a loss.
func lostConnection(reason closeReason) bool {
	switch reason {
	case reasonClientClosed, reasonReadError, reasonWriteError, reasonStalledSender, reasonHeartbeat:
		return true
	}
	return false
}

// expire ends a session still away when its window has passed (or that
// the registry evicted). It runs in the timer's goroutine.
func (s *session) expire() {
	defer s.srv.sessions.wg.Done()
	s.mu.Lock()
	if !s.armed {
		s.mu.Unlock()
		return
	}
	s.armed = false
	if s.conn != nil || s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	reason, cause := reasonResumeExpired, error(nil)
	if s.evict != nil {
		reason, cause = reasonEvicted, s.evict
	}
	away := time.Since(s.lostAt)
	s.mu.Unlock()
	s.srv.cfg.Logger.Info("session ended", "user", s.name, "reason", reason.String(), "err", cause, "away", away.Round(time.Millisecond))
	s.end(reason)
}

// end ends the session for good, once: it leaves the hub, the users who
// asked are told, and its line is printed.
func (s *session) end(reason closeReason) {
	srv := s.srv
	srv.sessions.remove(s)
	srv.cfg.Hub.Leave(s)
	pr := &srv.presence
	pr.mu.Lock()
	if s.presence {
		pr.subscribers--
	}
	srv.presenceLocked(s.name, false, nil, nil)
	pr.mu.Unlock()
	if reason == reasonProtocolError {
		srv.out.println("disconnected: ", s.name, " sent unknown command")
	} else {
		srv.out.println("disconnected: ", s.name)
	}
	s.mu.Lock()
	s.kept, s.head, s.bytes = nil, 0, 0
	s.mu.Unlock()
}

// sessionTable is a server's sessions, by name.
type sessionTable struct {
	mu     sync.Mutex
	byName map[string]*session // guarded by mu
	wg     sync.WaitGroup      // one per armed timer
}

func (t *sessionTable) add(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byName == nil {
		t.byName = make(map[string]*session)
	}
	t.byName[s.name] = s
}

func (t *sessionTable) get(name string) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byName[name]
}

func (t *sessionTable) remove(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byName[s.name] == s {
		delete(t.byName, s.name)
	}
}

// endAll ends the sessions waiting for a resume, as the server shuts down
// (its connections have ended: the sessions they held are over), and
// waits for the expiries under way.
func (t *sessionTable) endAll() {
	t.mu.Lock()
	all := make([]*session, 0, len(t.byName))
	for _, s := range t.byName {
		all = append(all, s)
	}
	t.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		away := s.conn == nil && !s.ended && s.armed && s.timer.Stop()
		if away {
			s.armed, s.ended = false, true
			t.wg.Done()
		}
		s.mu.Unlock()
		if away {
			s.end(reasonServerShutdown)
		}
	}
	t.wg.Wait()
}

// peerConn returns the connection of this server behind p: p itself, or
// the connection a session has attached (nil while it is away).
func peerConn(p Peer) *conn {
	switch p := p.(type) {
	case *conn:
		return p
	case *session:
		return p.current()
	}
	return nil
}

// presenceTarget returns p if it is a user of this server that asked for
// presence, and not the connection except; nil otherwise.
func presenceTarget(p Peer, except *conn) Peer {
	switch p := p.(type) {
	case *conn:
		if p != except && p.ext.presence {
			return p
		}
	case *session:
		if p.presence && (except == nil || p.origin != except.id) {
			return p
		}
	}
	return nil
}

// joinPeer returns the peer that joins the hub for c: a new session if c
// was granted resume, c itself otherwise.
func (c *conn) joinPeer() Peer {
	if !c.resume {
		return c
	}
	c.sess = newSession(c)
	return c.sess
}

// startSession attaches a session that has just joined to its connection
// (sending it the session frame) and registers it for resumes.
func (c *conn) startSession() {
	if c.sess == nil {
		return
	}
	c.srv.sessions.add(c.sess)
	c.sess.attach(c, 0)
}

// handleReceived takes a client's acknowledgement of the counted frames it
// has received.
func (c *conn) handleReceived() (err error) {
	if c.sess == nil {
		return fmt.Errorf("%w: received without resume", protocol.ErrMalformed)
	}
	if c.buf, err = c.r.ReadPayload(c.buf); err != nil {
		return err
	}
	n, err := protocol.ParseCountFrame(c.buf)
	if err != nil {
		return err
	}
	return c.sess.ack(n)
}

// finishSession ends a joined connection's part in its session, if it
// holds one (and reports whether it did): the session goes on if c was
// taken over, or was lost and the session now waits for a resume;
// otherwise the session ends for good (the user leaves the hub, and its
// line is printed).
func (c *conn) finishSession(reason closeReason) bool {
	if c.sess == nil {
		return false
	}
	goesOn, away := c.sess.detach(c, reason)
	switch {
	case away:
		c.logAt(slog.LevelInfo, "connection lost; the session waits for a resume", "reason", reason.String(), "window", c.srv.cfg.ResumeWindow)
	case !goesOn:
		c.sess.end(reason)
	}
	return true
}
