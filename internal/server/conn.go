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
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gochat/chat/internal/protocol"
)

// closeReason says why a connection ended.
type closeReason uint8

// The close reasons.
const (
	reasonNone closeReason = iota
	reasonClientQuit
	reasonClientClosed
	reasonReadError
	reasonProtocolError
	reasonSlowConsumer
	reasonWriteError
	reasonServerShutdown
	reasonJoinTimeout
	reasonServerFull
	reasonNameUnavailable
	reasonAbortedTransfer
	reasonStalledSender
	reasonInternalError
	reasonTooManyFromAddr
	numReasons
)

var reasonNames = [...]string{
	reasonNone:            "none",
	reasonClientQuit:      "client quit",
	reasonClientClosed:    "client closed connection",
	reasonReadError:       "read error",
	reasonProtocolError:   "protocol error",
	reasonSlowConsumer:    "slow consumer",
	reasonWriteError:      "write error",
	reasonServerShutdown:  "server shutdown",
	reasonJoinTimeout:     "join timeout",
	reasonServerFull:      "server full",
	reasonNameUnavailable: "username not available",
	reasonAbortedTransfer: "file transfer aborted by its sender",
	reasonStalledSender:   "file sender stalled",
	reasonInternalError:   "internal error",
	reasonTooManyFromAddr: "too many connections from the address",
}

// String returns the reason in words.
func (r closeReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Frames the server sends with an empty payload.
var (
	frameUnknown     = protocol.AppendEmpty(nil, protocol.ErrUnknownMessage)
	frameFull        = protocol.AppendEmpty(nil, protocol.ErrServerFull)
	frameUnavailable = protocol.AppendEmpty(nil, protocol.ErrUsernameUnavailable)
)

const (
	// smallFile is the largest file content read whole before it is
	// relayed; larger files are streamed.
	smallFile = 256 << 10
	// maxKeptBuffer is the largest payload buffer kept between frames.
	maxKeptBuffer = 4 << 10
	// readBufferSize is the size of a connection's read buffer, taken
	// from a pool while input is waiting and handed back when idle.
	readBufferSize = 4 << 10
)

// conn is one client connection. Its serve goroutine owns the reading side
// and all state not marked otherwise.
type conn struct {
	srv    *Server
	id     uint64
	nc     net.Conn
	r      *protocol.Reader
	q      *sendQueue
	ticket *ticket
	flood  *rate.Limiter // nil: no flood control
	m      *metrics

	addr        netip.Addr // the peer's address; set by newConn under srv.mu
	addrCounted bool       // addr counts toward the per-address limit

	name    string // the joined name; set before the conn is in the hub, then read-only
	chunked bool   // the client asked for chunked files; set before joining, then read-only
	joined  bool
	buf     []byte     // payload buffer
	stats   *connStats // nil while idle, to keep idle connections small

	done chan struct{} // closed when the connection starts closing

	mu     sync.Mutex
	reason closeReason // the first reason given; guarded by mu
	killed bool        // the socket was closed abruptly; guarded by mu
}

func newConn(s *Server, nc net.Conn, t *ticket) *conn {
	c := &conn{
		srv:    s,
		id:     s.nextID.Add(1),
		nc:     nc,
		r:      protocol.NewPooledReader(nc, readBufferSize),
		ticket: t,
		done:   make(chan struct{}),
	}
	c.m = s.metrics
	if s.cfg.FloodRate > 0 {
		c.flood = rate.NewLimiter(rate.Limit(s.cfg.FloodRate), s.cfg.FloodBurst)
	}
	c.q = newSendQueue(nc, s.cfg.SendQueueBytes, s.cfg.StallTimeout, c.writeFailed)
	return c
}

// Name implements Peer.
func (c *conn) Name() string { return c.name }

// Send implements Peer.
func (c *conn) Send(frame []byte) error {
	err := c.q.push(frame)
	if errors.Is(err, ErrSlowConsumer) {
		c.kill(reasonSlowConsumer, fmt.Errorf("send queue over %d bytes", c.srv.cfg.SendQueueBytes))
	}
	return err
}

// OpenFile implements Peer.
func (c *conn) OpenFile(head FileHead, cancel <-chan struct{}) (FileStream, error) {
	if c.chunked {
		st := &chunkedStream{q: c.q, id: head.ID, cancel: cancel}
		begin := protocol.AppendFileBegin(nil, head.ID, head.Sender, head.Filename, head.Size)
		if err := c.q.pushPaced(nil, begin, nil, cancel); err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := c.q.openStream(cancel, c.done, func() {
		c.kill(reasonAbortedTransfer, nil)
	})
	if err != nil {
		return nil, err
	}
	head1 := protocol.AppendFileHead(nil, protocol.ForwardFile, []string{head.Sender}, head.Filename, head.Size)
	if err := st.writeHead(head1); err != nil {
		st.Abort()
		return nil, err
	}
	return st, nil
}

// writeFailed is called by the send queue when a write fails.
func (c *conn) writeFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.kill(reasonSlowConsumer, fmt.Errorf("took nothing for %v", c.srv.cfg.StallTimeout))
		return
	}
	c.kill(reasonWriteError, err)
}

// setReason records r unless a reason was recorded before, and returns the
// reason in force.
func (c *conn) setReason(r closeReason) closeReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason == reasonNone {
		c.reason = r
		close(c.done)
	}
	return c.reason
}

// kill cuts the connection off at once: the socket is closed, and the
// serve goroutine finishes the bookkeeping. Safe from any goroutine.
func (c *conn) kill(r closeReason, err error) {
	c.mu.Lock()
	first := c.reason == reasonNone
	if first {
		c.reason = r
		close(c.done)
	}
	c.killed = true
	c.mu.Unlock()
	if first && r == reasonSlowConsumer {
		c.m.slowConsumers.Inc()
	}
	if first && err != nil {
		c.logAt(slog.LevelWarn, "cutting connection off", "reason", r.String(), "err", err)
	}
	c.nc.Close()
}

func (c *conn) attrs() []any {
	a := []any{"conn", c.id, "remote", c.nc.RemoteAddr().String()}
	if c.name != "" {
		a = append(a, "user", c.name)
	}
	return a
}

// logAt logs msg with the connection's attributes and args, building
// nothing unless the level is enabled.
func (c *conn) logAt(level slog.Level, msg string, args ...any) {
	l := c.srv.log
	if !l.Enabled(context.Background(), level) {
		return
	}
	l.Log(context.Background(), level, msg, append(c.attrs(), args...)...)
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	defer c.srv.removeConn(c)
	defer c.srv.admit.release(c.ticket)
	reason, last := c.safeRun()
	c.finish(reason, last)
}

// safeRun runs the connection, turning a panic into an internal error that
// ends only this connection.
func (c *conn) safeRun() (reason closeReason, last []byte) {
	defer func() {
		if v := recover(); v != nil {
			c.logAt(slog.LevelError, "panic serving connection", "panic", v, "stack", string(debug.Stack()))
			reason, last = reasonInternalError, nil
		}
	}()
	reason, last = c.join()
	c.srv.admit.release(c.ticket)
	if reason != reasonNone {
		return reason, last
	}
	return c.loop()
}

// finish ends the connection: the user leaves, its line is printed, what
// was queued (and last) is flushed, and the socket is closed gracefully
// unless it was cut off.
func (c *conn) finish(reason closeReason, last []byte) {
	if reason == reasonNone {
		reason = reasonInternalError // never expected; keeps the metrics indexable
	}
	reason = c.setReason(reason)
	if c.joined {
		c.srv.hub.Leave(c)
		if reason == reasonProtocolError {
			c.srv.out.println("disconnected: ", c.name, " sent unknown command")
		} else {
			c.srv.out.println("disconnected: ", c.name)
		}
	}
	c.flushStats()
	c.m.disconnects[reason].Inc()
	c.logAt(slog.LevelInfo, "connection closed", "reason", reason.String())

	c.mu.Lock()
	killed := c.killed
	c.mu.Unlock()
	drained := c.q.close(last)
	if !killed {
		timer := time.NewTimer(closeFlushTimeout)
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
		c.nc.SetReadDeadline(time.Now().Add(closeLinger))
		io.Copy(io.Discard, c.nc)
	}
	c.nc.Close()
	<-drained
}

// join handles the connection's first frame. It returns reasonNone once
// the user has joined.
func (c *conn) join() (closeReason, []byte) {
	s := c.srv
	c.nc.SetReadDeadline(time.Now().Add(s.cfg.JoinTimeout))
	waitReadable(c.nc)
	h, err := c.r.ReadHeader()
	if err != nil {
		return c.readFailed(err, true)
	}
	if h.Type == protocol.ExtHello {
		if h, err = c.hello(h); err != nil {
			return c.readFailed(err, true)
		}
	}
	if h.Type != protocol.Join {
		c.logAt(slog.LevelInfo, "first frame is not join", "type", h.Name)
		return reasonProtocolError, frameUnknown
	}
	var name string
	var nameErr error
	if h.Length > protocol.MaxJoinPayload {
		nameErr = fmt.Errorf("join payload of %d bytes", h.Length)
	} else {
		p, err := c.r.ReadPayload(c.buf)
		if err != nil {
			return c.readFailed(err, true)
		}
		name, nameErr = protocol.ParseJoin(p)
	}
	s.admit.wait(c.ticket, c.done)

	if nameErr == nil {
		c.name = name
		nameErr = s.hub.Join(c, s.cfg.MaxClients)
		if nameErr != nil {
			c.name = ""
		}
	} else if s.hub.Len() >= s.cfg.MaxClients {
		nameErr = ErrServerFull
	}
	s.admit.release(c.ticket)
	switch {
	case nameErr == nil:
		c.joined = true
		s.out.println("join: ", c.name)
		c.logAt(slog.LevelInfo, "joined")
		c.nc.SetReadDeadline(time.Time{})
		return reasonNone, nil
	case errors.Is(nameErr, ErrServerFull):
		s.out.println("disconnected: server full")
		return reasonServerFull, frameFull
	default:
		c.logAt(slog.LevelInfo, "join refused", "err", nameErr)
		s.out.println("disconnected: username not available")
		return reasonNameUnavailable, frameUnavailable
	}
}

// hello answers an ext_hello frame (header h) with the features this
// server shares with the client, and returns the next frame's header.
func (c *conn) hello(h protocol.Header) (protocol.Header, error) {
	if h.Length > protocol.MaxExtHello {
		return h, fmt.Errorf("%w: ext_hello of %d bytes", protocol.ErrMalformed, h.Length)
	}
	p, err := c.r.ReadPayload(c.buf)
	if err != nil {
		return h, err
	}
	features, err := protocol.ParseFeatures(p)
	if err != nil {
		return h, err
	}
	var accepted []string
	for _, f := range features {
		if f == protocol.FeatureChunkedFile && !c.chunked {
			c.chunked = true
			accepted = append(accepted, f)
		}
	}
	c.logAt(slog.LevelDebug, "extensions", "asked", features, "accepted", accepted)
	c.q.push(protocol.AppendExtHello(nil, accepted))
	return c.r.ReadHeader()
}

// readFailed maps a read error to a close reason and the frame to answer.
func (c *conn) readFailed(err error, beforeJoin bool) (closeReason, []byte) {
	var ne net.Error
	switch {
	case errors.Is(err, protocol.ErrMalformed):
		c.logAt(slog.LevelInfo, "malformed frame", "err", err)
		return reasonProtocolError, frameUnknown
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return reasonClientClosed, nil
	case beforeJoin && errors.As(err, &ne) && ne.Timeout():
		return reasonJoinTimeout, nil
	case errors.As(err, &ne) && ne.Timeout():
		return reasonStalledSender, nil
	}
	c.logAt(slog.LevelDebug, "read failed", "err", err)
	return reasonReadError, nil
}

// loop handles frames after the join until the connection ends.
func (c *conn) loop() (closeReason, []byte) {
	s := c.srv
	for {
		if cap(c.buf) > maxKeptBuffer {
			c.buf = nil
		}
		if c.r.Buffered() == 0 {
			// About to wait for input: hold no memory while idle.
			if c.stats != nil {
				c.flushStats()
			}
			c.r.Release()
			c.buf = nil
			waitReadable(c.nc)
		}
		h, err := c.r.ReadHeader()
		if err != nil {
			return c.readFailed(err, false)
		}
		if c.stats == nil {
			c.stats = new(connStats)
		}
		c.stats.framesIn[h.Type]++
		c.stats.bytesIn[h.Type] += h.Size() + h.Length
		if max := s.limits.MaxPayload(protocol.ToServer, h.Type); max < 0 || h.Length > max {
			c.logAt(slog.LevelInfo, "unexpected frame", "type", h.Name, "length", h.Length)
			return reasonProtocolError, frameUnknown
		}
		if !c.paceReads() {
			return reasonServerShutdown, nil
		}
		switch h.Type {
		case protocol.RequestUsersList:
			s.out.println("request_users_list: ", c.name)
			c.deliver([]Peer{c}, protocol.ResponseUsersList, protocol.AppendUsersList(nil, s.hub.Users()))
		case protocol.SendMessage:
			c.buf, err = c.r.ReadPayload(c.buf)
			if err != nil {
				return c.readFailed(err, false)
			}
			names, text, err := protocol.ParseSend(c.buf)
			if err != nil {
				return c.readFailed(err, false)
			}
			frame := protocol.AppendMessage(nil, protocol.ForwardMessage, []string{c.name}, text)
			c.deliver(c.recipients("msg: ", names), protocol.ForwardMessage, frame)
		case protocol.SendFile:
			if r, last := c.relayFile(); r != reasonNone {
				return r, last
			}
		case protocol.Disconnect:
			c.buf, err = c.r.ReadPayload(c.buf)
			if err != nil {
				return c.readFailed(err, false)
			}
			if string(c.buf) != c.name {
				c.logAt(slog.LevelInfo, "disconnect names another user", "payload", string(c.buf))
				return reasonProtocolError, frameUnknown
			}
			return reasonClientQuit, nil
		default:
			c.logAt(slog.LevelInfo, "unexpected frame", "type", h.Name)
			return reasonProtocolError, frameUnknown
		}
	}
}

// recipients prints the event line (prefix and the sender's name) and a
// line for each distinct name not joined, and returns the distinct peers
// joined under the others.
func (c *conn) recipients(prefix string, names []string) []Peer {
	s := c.srv
	s.out.println(prefix, c.name)
	peers := make([]Peer, 0, len(names))
	var seen map[string]struct{} // for long lists; short ones are scanned
	for i, name := range names {
		if len(names) > 8 {
			if seen == nil {
				seen = make(map[string]struct{}, len(names))
			}
			if _, dup := seen[name]; dup {
				continue
			}
			seen[name] = struct{}{}
		} else if slices.Contains(names[:i], name) {
			continue
		}
		if p := s.hub.Lookup(name); p != nil {
			peers = append(peers, p)
		} else {
			s.out.println(prefix, c.name, " to non-existent user ", name)
		}
	}
	return peers
}

// relayFile handles a send_file frame whose header has been read.
func (c *conn) relayFile() (closeReason, []byte) {
	s := c.srv
	names, filename, err := protocol.ReadFileHead(c.r, 1, protocol.MaxRecipients)
	if err != nil {
		return c.readFailed(err, false)
	}
	size := c.r.Remaining()
	if size > s.cfg.MaxFileSize {
		c.logAt(slog.LevelInfo, "file too large", "size", size)
		return reasonProtocolError, frameUnknown
	}
	c.m.fileBytes.Add(float64(size)) // only files that are relayed
	peers := c.recipients("file: ", names)
	head := protocol.AppendFileHead(nil, protocol.ForwardFile, []string{c.name}, filename, size)
	if size <= smallFile {
		frame := head
		frame = slices.Grow(frame, int(size))[:len(head)+int(size)]
		if _, err := io.ReadFull(c.r, frame[len(head):]); err != nil {
			return c.readFailed(err, false)
		}
		c.deliver(peers, protocol.ForwardFile, frame)
		return reasonNone, nil
	}
	return c.streamFile(peers, filename, size)
}

// streamFile relays a large file's content to peers chunk by chunk as it
// arrives, paced by the slowest peer.
func (c *conn) streamFile(peers []Peer, filename string, size int64) (closeReason, []byte) {
	s := c.srv
	// Open streams in name order, so two senders never wait on each other.
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name(), b.Name()) })
	head := FileHead{ID: s.nextFileID.Add(1), Sender: c.name, Filename: filename, Size: size}
	streams := make([]FileStream, 0, len(peers))
	for _, p := range peers {
		if st, err := p.OpenFile(head, c.done); err == nil {
			streams = append(streams, st)
		}
	}
	var deadline time.Time
	for size > 0 {
		// Refresh the stall deadline about once a second, not per read.
		if now := time.Now(); deadline.Sub(now) < s.cfg.StallTimeout-time.Second {
			deadline = now.Add(s.cfg.StallTimeout)
			c.nc.SetReadDeadline(deadline)
		}
		fb := getFileBuf()
		n, err := c.r.Read(fb.b[:min(size, int64(len(fb.b)))])
		if err != nil {
			fb.release()
			for _, st := range streams {
				if st != nil {
					st.Abort()
				}
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return c.readFailed(err, false)
		}
		size -= int64(n)
		chunk := Chunk{ID: head.ID, Data: fb.b[:n], ref: fb}
		for i, st := range streams {
			if st == nil {
				continue
			}
			if err := st.Write(chunk); err != nil {
				st.Abort()
				streams[i] = nil
			}
		}
		fb.release()
	}
	c.nc.SetReadDeadline(time.Time{})
	for _, st := range streams {
		if st != nil {
			st.Close()
		}
	}
	return reasonNone, nil
}

// paceReads waits as long as flood control asks before the next frame is
// read. It returns false if the connection closed meanwhile.
func (c *conn) paceReads() bool {
	if c.flood == nil {
		return true
	}
	d := c.flood.Reserve().Delay()
	if d <= 0 {
		return true
	}
	c.m.floodDelays.Inc()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// deliver sends a frame of type t to peers and counts it.
func (c *conn) deliver(peers []Peer, t protocol.Type, frame []byte) {
	if c.stats == nil {
		c.stats = new(connStats)
	}
	c.stats.framesOut[t] += int64(len(peers))
	c.stats.bytesOut[t] += int64(len(frame) * len(peers))
	if c.stats.pending++; c.stats.pending >= 256 || c.r.Buffered() == 0 {
		// Counted before the peers can see the frame, in batches while
		// more frames wait to be decoded.
		c.flushStats()
	}
	for _, p := range peers {
		p.Send(frame)
	}
}

// connStats holds counts not yet added to the shared metrics, so that the
// hot path touches no shared cache line.
type connStats struct {
	framesIn, bytesIn, framesOut, bytesOut [protocol.NumTypes]int64
	pending                                int // deliveries since the last flush
}

// flushStats adds the connection's pending counts to the metrics, and
// lets go of them if no more input is waiting.
func (c *conn) flushStats() {
	st := c.stats
	if st == nil {
		return
	}
	if c.r.Buffered() == 0 {
		c.stats = nil
	}
	for t := range protocol.NumTypes {
		if st.framesIn[t] != 0 {
			c.m.framesIn[t].Add(float64(st.framesIn[t]))
			c.m.bytesIn[t].Add(float64(st.bytesIn[t]))
			st.framesIn[t], st.bytesIn[t] = 0, 0
		}
		if st.framesOut[t] != 0 {
			c.m.framesOut[t].Add(float64(st.framesOut[t]))
			c.m.bytesOut[t].Add(float64(st.bytesOut[t]))
			st.framesOut[t], st.bytesOut[t] = 0, 0
		}
	}
	st.pending = 0
}
