package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gochat/chat/internal/protocol"
)

// Frames the server sends with an empty payload.
var (
	frameUnknown     = protocol.AppendEmpty(nil, protocol.ErrUnknownMessage)
	frameFull        = protocol.AppendEmpty(nil, protocol.ErrServerFull)
	frameUnavailable = protocol.AppendEmpty(nil, protocol.ErrUsernameUnavailable)
	frameJoinOK      = protocol.AppendEmpty(nil, protocol.JoinOK)
)

const (
	// maxKeptBuffer is the largest payload buffer kept between frames.
	maxKeptBuffer = 4 << 10
	// maxKeptNames is the longest recipient list whose slices an idle
	// connection keeps.
	maxKeptNames = 16
	// readBufferSize is the size of a connection's read buffer, taken
	// from a pool while input is waiting and handed back when idle.
	readBufferSize = 4 << 10
)

// conn is one client connection. Its serve goroutine owns the reading
// side and every field not marked otherwise.
type conn struct {
	srv    *Server
	id     uint64
	nc     net.Conn
	r      *protocol.Reader
	q      *sendQueue
	ticket *ticket
	flood  *rate.Limiter // frames per second; nil: no limit
	budget *byteBudget   // bytes delivered per second; nil: no limit
	m      *metrics

	addr        netip.Addr // the peer's address; set by Server.newConn under srv.mu
	addrCounted bool       // addr counts toward the per-address limit

	name    string     // the joined name; set by join before the conn is in the hub, then read-only
	chunked bool       // the client asked for chunked files; set by hello before the join, then read-only
	ext     extState   // the other extensions (ext.go, upload.go, notonline.go, presence.go, online.go)
	resume  bool       // the client asked for resume; set by hello before the join, then read-only
	cursor  bool       // the client asked for cursor frames (cursor.go); set by hello, then read-only
	hbOn    bool       // the client asked for heartbeat (heartbeat.go); set by hello, then read-only
	hb      hbState    // the heartbeat's flags, watched by the sweeper once the user is in the hub
	taken   bool       // the client asked for taken: its frames are counted (taken.go); set by hello, then read-only
	took    uint64     // the session's count of the client's frames taken, as last seen (taken.go)
	told    uint64     // the count last told the client (taken.go)
	sess    *session   // the session, if resume was granted; set by the serve goroutine before the user is in the hub, then read-only (session.go)
	joined  bool       // the user is in the hub
	buf     []byte     // payload buffer
	stats   *connStats // nil while idle, to keep idle connections small
	names   []string   // handleSend's recipient names, reused from frame to frame
	peers   []Peer     // handleSend's recipients, reused; emptied after each frame

	done chan struct{} // closed by markClosed when the connection starts closing

	mu     sync.Mutex
	reason closeReason // the first reason given; guarded by mu
	cause  error       // what made the first reason, for the log; guarded by mu
	killed bool        // the socket was closed abruptly; guarded by mu
}

func newConn(s *Server, nc net.Conn, t *ticket) *conn {
	c := &conn{
		srv:    s,
		id:     s.nextID.Add(1),
		nc:     nc,
		r:      protocol.NewPooledReader(nc, readBufferSize),
		ticket: t,
		m:      s.metrics,
		done:   make(chan struct{}),
	}
	if s.cfg.FloodRate > 0 {
		c.flood = rate.NewLimiter(rate.Limit(s.cfg.FloodRate), s.cfg.FloodBurst)
	}
	if s.cfg.FloodBytes > 0 {
		c.budget = newByteBudget(s.cfg.FloodBytes, s.cfg.FloodBytesBurst)
	}
	c.q = newSendQueue(nc, s.cfg.SendQueueBytes, s.cfg.PaceBacklog, s.cfg.StallTimeout, c.writeFailed)
	return c
}

// markClosed is the one place that decides how a connection ends: it
// records r (and its cause, if not nil) unless a reason was recorded
// before, closes done the first time, notes an abrupt close if kill is
// set, and returns the reason in force. Safe from any goroutine.
func (c *conn) markClosed(r closeReason, cause error, kill bool) closeReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == reasonNone {
		c.reason, c.cause = r, cause
		close(c.done)
		if r == reasonSlowConsumer {
			c.m.slowConsumers.Inc()
		}
	}
	c.killed = c.killed || kill
	return c.reason
}

// kill cuts the connection off at once: the socket is closed, and the
// serve goroutine finishes the bookkeeping and the logging. Safe from any
// goroutine.
func (c *conn) kill(r closeReason, cause error) {
	c.markClosed(r, cause, true)
	c.nc.Close()
}

// logAt logs msg with the connection's attributes and args, building
// nothing unless the level is enabled. Only the serve goroutine logs, as
// only it may read the name while the connection joins.
func (c *conn) logAt(level slog.Level, msg string, args ...any) {
	l := c.srv.cfg.Logger
	if !l.Enabled(context.Background(), level) {
		return
	}
	attrs := []any{"conn", c.id, "remote", c.nc.RemoteAddr().String()}
	if c.name != "" {
		attrs = append(attrs, "user", c.name)
	}
	l.Log(context.Background(), level, msg, append(attrs, args...)...)
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	defer c.srv.removeConn(c)
	c.finish(c.ending(c.safeRun()))
}

// errPanic stands for a panic recovered while serving.
var errPanic = errors.New("panic serving connection")

// safeRun runs the connection, turning a panic into an error that ends
// only this connection.
func (c *conn) safeRun() (err error) {
	defer func() {
		if v := recover(); v != nil {
			c.logAt(slog.LevelError, "panic serving connection", "panic", v, "stack", string(debug.Stack()))
			err = &endError{reason: reasonInternalError, err: errPanic}
		}
	}()
	if err := c.join(); err != nil {
		return err
	}
	return c.loop()
}

// ending maps the error that ended the connection's frames to a close
// reason and the frame to answer it with.
func (c *conn) ending(err error) (closeReason, []byte) {
	var ee *endError
	var ne net.Error
	switch {
	case errors.As(err, &ee):
		return ee.reason, ee.last
	case errors.Is(err, protocol.ErrMalformed):
		c.logAt(slog.LevelInfo, "malformed frame", "err", err)
		return reasonProtocolError, frameUnknown
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return reasonClientClosed, nil
	case errors.As(err, &ne) && ne.Timeout() && !c.joined:
		return reasonJoinTimeout, nil
	case errors.As(err, &ne) && ne.Timeout():
		return reasonStalledSender, nil
	}
	c.logAt(slog.LevelDebug, "read failed", "err", err)
	return reasonReadError, nil
}

// finish ends the connection: the user leaves, its line is printed, what
// was queued (and last) is flushed, the socket is closed gracefully unless
// it was cut off, and the end is logged.
func (c *conn) finish(reason closeReason, last []byte) {
	reason = c.markClosed(reason, nil, false)
	c.endUploads() // after the reason is set: its own plain copy of an upload may cut it off
	if c.joined && !c.finishSession(reason) {
		c.srv.cfg.Hub.Leave(c)
		c.announce(false)
		if reason == reasonProtocolError {
			c.srv.out.println("disconnected: ", c.name, " sent unknown command")
		} else {
			c.srv.out.println("disconnected: ", c.name)
		}
	}
	c.flushStats()
	c.m.disconnects[reason].Inc()
	c.mu.Lock()
	killed := c.killed
	c.mu.Unlock()
	drained := c.q.close(last)
	if !killed {
		timer := time.NewTimer(c.srv.cfg.closeFlushTimeout)
		select {
		case <-drained:
		case <-timer.C:
			c.nc.Close()
		}
		timer.Stop()
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		// Read until the peer closes so our last frame is not lost to a
		// reset caused by unread input.
		c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.closeLinger))
		io.Copy(io.Discard, c.nc)
	}
	c.nc.Close()
	c.q.feeders.Wait() // the queue is closed: they end
	<-drained

	c.mu.Lock()
	cause := c.cause
	c.mu.Unlock()
	if cause != nil {
		c.logAt(slog.LevelWarn, "cut connection off", "reason", reason.String(), "err", cause)
	}
	c.logAt(slog.LevelInfo, "connection closed", "reason", reason.String())
}

// writeFailed is called by the send queue's writer when a write fails.
func (c *conn) writeFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.kill(reasonSlowConsumer, fmt.Errorf("took nothing for %v", c.srv.cfg.StallTimeout))
		return
	}
	c.kill(reasonWriteError, err)
}
