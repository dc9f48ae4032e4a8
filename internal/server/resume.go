package server

import (
	"fmt"
	"log/slog"
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
	if h.Length > (protocol.Limits{}).MaxPayload(protocol.ToServer, protocol.Resume) {
		return fmt.Errorf("%w: resume of %d bytes", protocol.ErrMalformed, h.Length)
	}
	p, err := c.r.ReadPayload(c.buf)
	if err != nil {
		return err
	}
	name, token, n, err := protocol.ParseResume(p)
	if err != nil {
		return err
	}
	s := c.srv
	if s.shutting.Load() {
		return errConnClosing
	}
	sess := s.sessions.get(name)
	if sess == nil || !sess.token.Equal(token) {
		// The same answer for both: whether a name has a session is not
		// told to whoever lacks its token.
		c.logAt(slog.LevelInfo, "resume refused", "as", name, "err", "no session of that name and token")
		return &endError{reason: reasonResumeFailed, last: frameResumeFailed}
	}
	c.name, c.sess = name, sess
	old, missed, err := sess.attach(c, n)
	if err != nil {
		c.name, c.sess = "", nil
		c.logAt(slog.LevelInfo, "resume refused", "as", name, "err", err)
		return &endError{reason: reasonResumeFailed, last: frameResumeFailed}
	}
	if old != nil {
		old.kill(reasonTakenOver, nil)
	}
	c.joined = true
	c.nc.SetReadDeadline(time.Time{})
	c.m.resumes.Inc()
	c.m.resumeMissed.Add(float64(missed))
	c.logAt(slog.LevelInfo, "resumed", "received", n, "missed", missed, "took_over", old != nil)
	return nil
}
