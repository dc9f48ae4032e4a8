package server

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// resumeSession handles a resume frame (header h), sent instead of join by
// a connection that was granted resume: with the name and token of a
// session of this server, and a count of counted frames received no
// greater than what the session sent, the connection takes the session
// over at once (a connection still attached, half-open maybe, is closed
// without a line on stdout) and is sent resumed, then what it missed.
// Anything else is answered resume_failed, and the connection closed;
// nothing is printed on stdout either way. It returns nil once the
// connection holds the session.
func (c *conn) resumeSession(h protocol.Header) error {
	limit := (protocol.Limits{}).MaxPayload(protocol.ToServer, protocol.Resume)
	if c.cursor {
		limit = protocol.MaxResumeCursor
	}
	if h.Length > limit {
		return fmt.Errorf("%w: resume of %d bytes", protocol.ErrMalformed, h.Length)
	}
	p, err := c.r.ReadPayload(c.buf)
	if err != nil {
		return err
	}
	name, token, n, j, cursor, err := protocol.ParseResumeAt(p)
	if err != nil {
		return err
	}
	s := c.srv
	if s.shutting.Load() {
		return errConnClosing
	}
	sess := s.sessions.get(name)
	if mv, ok := s.cfg.Hub.(SessionMover); ok && sess == nil {
		return c.resumeMoved(mv, name, token, n, j, cursor)
	}
	if sess == nil || !sess.token.Equal(token) {
		// The same answer for both: whether a name has a session is not
		// told to whoever lacks its token.
		c.logAt(slog.LevelInfo, "resume refused", "as", name, "err", "no session of that name and token")
		return &endError{reason: reasonResumeFailed, last: frameResumeFailed}
	}
	c.name, c.sess = name, sess
	return c.attach(sess, n, "resumed")
}

// attach makes c the connection of sess, the client having received n of
// its counted frames, closing an old connection still attached; what
// names the resume in the log. A session that ended meanwhile refuses it.
func (c *conn) attach(sess *session, n uint64, what string) error {
	old, missed, err := sess.attach(c, n)
	if err != nil {
		c.logAt(slog.LevelInfo, "resume refused", "as", c.name, "err", err)
		c.name, c.sess = "", nil
		return &endError{reason: reasonResumeFailed, last: frameResumeFailed}
	}
	if old != nil {
		old.kill(reasonTakenOver, nil)
	}
	c.joined = true
	c.nc.SetReadDeadline(time.Time{})
	c.m.resumes.Inc()
	c.m.resumeMissed.Add(float64(missed))
	c.logAt(slog.LevelInfo, what, "received", n, "missed", missed, "took_over", old != nil)
	return nil
}

// ErrNoSession is returned by SessionMover.TakeOver when no session of the
// name and token may be taken over.
var ErrNoSession = errors.New("no session of that name and token")

// Resumable is implemented by the hub's peers that stand for sessions
// granted resume: a hub that lets another server take a session over
// (SessionMover) keeps a hash of the token, and the window, with the
// name.
type Resumable interface {
	Peer
	// Token returns the session's token.
	Token() protocol.Token
	// Window returns how long the session outlives a lost connection.
	Window() time.Duration
}

// Movable is implemented by the hub's peers that stand for sessions
// granted resume: MovedAway ends this server's part in a session that a
// resume on another server took over. Nothing is printed and no leave is
// announced (the user never left); a connection still attached is closed
// as a local takeover closes it.
type Movable interface {
	Peer
	MovedAway()
}

// SessionMover is implemented by a Hub whose sessions may be resumed on
// another server (a cluster's node): TakeOver admits p, a session made
// for a resume of p.Name() presenting token, in place of the session that
// another server holds or held, or returns ErrNoSession. pos is the
// client's position in the frames of each other server (origin), from
// its cursor (nil if it has none): each origin delivers to p, through
// OriginSender, what it kept after it, and missed is the number of
// frames after it that no origin kept.
type SessionMover interface {
	Hub
	TakeOver(p Peer, token protocol.Token, pos map[string]uint64) (missed uint64, err error)
}

// OriginSender is implemented by the peers that stand for sessions
// granted resume: a frame relayed from another server (origin) of the
// hub, as the seq-th that server sent the session, is queued as Send and
// Offer do, and a frame of an origin already past seq is dropped (a
// replay may bring it twice).
type OriginSender interface {
	SendFrom(frame []byte, origin string, seq uint64) error
	OfferFrom(frame []byte, origin string, seq uint64) (retry <-chan struct{}, err error)
	// Originated returns how many counted frames this server
	// originated for the session since it holds it (the position a
	// cursor names under "-"); the hub reports it to the others.
	Originated() uint64
}

// LocalPosition is the key, in the positions SessionMover.TakeOver gets,
// of the client's position in the frames the old server originated.
const LocalPosition = localOrigin

// resumeMoved takes over, for connection c, the session of name that
// another server of the hub holds or held (its node died, or the client
// came back through another): the hub moves it, proving token, and c
// gets resumed. The frames the other server kept are not here: the
// client is told none were missed (docs/SESSIONS.md, "What is missing").
func (c *conn) resumeMoved(mv SessionMover, name string, token protocol.Token, n, j uint64, cursor []byte) error {
	s := c.srv
	// The old server's count of the client's frames (taken.go) is known
	// here only if the hub gets it from the old server, which runs
	// (TakenCounter); else resumed says ~0, and the client sends again
	// what the old server had not confirmed (docs/SESSIONS.md, "The
	// client's frames").
	sess := &session{srv: s, name: name, token: token, presence: c.ext.presence, origin: c.id, told: true, last: n, first: n + 1, takenLower: true, takes: c.taken, holds: c.holdsTaken(), watch: c.countWatcher()}
	var pos map[string]uint64
	if c.cursor {
		// A client granted cursor that has none was sent no frame
		// from another origin: its position is 0 in every one, and its
		// n frames were all the old server's own.
		pos = map[string]uint64{localOrigin: n}
		if cursor != nil {
			var err error
			if pos, err = parseCursor(cursor, j); err != nil {
				return err
			}
		}
		sess.org = newOrigins()
		sess.org.last = movedOrigin
		sess.org.pos = maps.Clone(pos)
		delete(sess.org.pos, localOrigin) // the old server's; this one numbers its own from 0
	}
	missedElsewhere, err := mv.TakeOver(sess, token, pos)
	if err != nil {
		c.logAt(slog.LevelInfo, "resume refused", "as", name, "err", err)
		return &endError{reason: reasonResumeFailed, last: frameResumeFailed}
	}
	s.sessions.add(sess)
	if sess.presence {
		s.presence.mu.Lock()
		s.presence.subscribers++
		s.presence.mu.Unlock()
	}
	c.name, c.sess = name, sess
	sess.mu.Lock()
	sess.missed = missedElsewhere
	sess.mu.Unlock()
	return c.attach(sess, n, "resumed a session from another node") // refused if it moved away again meanwhile
}
