package client

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// The heartbeat extension, the client's side (docs/PROTOCOL.md,
// "heartbeat"; docs/CLIENT.md, "A lost connection"). A connection whose
// server vanished without a FIN or a RST (a network gone, a NAT that
// forgot the flow, a server host frozen) reads nothing, and TCP says so
// only when its retransmissions give up, after minutes; a write into it
// succeeds meanwhile. With heartbeat, the client pings when it has heard
// nothing for its interval (the server answers pong, and pings a client
// that has said nothing for half its own timeout, which the client
// answers), and takes the connection as lost once it has heard nothing
// for hbMisses intervals: it closes it, and the receiver resumes, or
// ends the session, as after any lost connection.
//
// What counts is bytes: a read that returns some stamps the time, so a
// connection busy with a long frame (a file's chunk, a plain
// forward_file) is not silent. The silence counts only while the
// receiver waits in a read: one held up by the client itself (a disk
// that takes its time, a stdout that takes nothing: a terminal paused
// with Ctrl-S) is not the server's silence. One timer per session, reset
// at most once per interval.

// DefaultHeartbeat is the client's heartbeat interval: a connection is
// taken as lost after hbMisses of them without a frame, 15 s.
const DefaultHeartbeat = 5 * time.Second

// hbMisses is how many intervals without a frame make a connection lost:
// two pings unanswered, each a whole interval late.
const hbMisses = 3

// hbClient is the client's heartbeat state.
type hbClient struct {
	on      bool         // the server granted heartbeat; set before the receiver starts
	heardAt atomic.Int64 // when the last bytes arrived (UnixNano); stamped by hbConn.Read
	reading atomic.Bool  // the receiver waits in a read (hbConn.Read)
	sending atomic.Bool  // a ping or pong is on its way to the connection
	stop    chan struct{}
	wg      sync.WaitGroup // the heartbeat's goroutine, and its writes
}

// hbConn is a connection of a client that asks for heartbeat: its reads
// tell the heartbeat when bytes arrive, and whether the receiver waits.
type hbConn struct {
	net.Conn
	hb *hbClient
}

// Read reads from the connection, stamping the time if bytes came.
func (h *hbConn) Read(p []byte) (int, error) {
	h.hb.reading.Store(true)
	n, err := h.Conn.Read(p)
	h.hb.reading.Store(false)
	if n > 0 {
		h.hb.heardAt.Store(time.Now().UnixNano())
	}
	return n, err
}

// CloseWrite shuts the writing side of the connection, if it can.
func (h *hbConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// startHeartbeat starts the heartbeat, if it was granted. It is called
// by the receiver as it starts, and stopHeartbeat as it ends.
func (c *client) startHeartbeat() {
	if !c.hb.on {
		return
	}
	c.hb.heardAt.Store(time.Now().UnixNano())
	c.hb.stop = make(chan struct{})
	c.hb.wg.Add(1)
	go c.heartbeatLoop()
}

// stopHeartbeat ends the heartbeat and waits for it and its writes.
func (c *client) stopHeartbeat() {
	if c.hb.stop != nil {
		close(c.hb.stop)
		c.hb.wg.Wait()
	}
}

// connInUse returns the connection whose silence is measured: the one
// in use when the session may resume, else the only one.
func (c *client) connInUse() net.Conn {
	if sc, ok := c.nc.(*swapConn); ok {
		return sc.conn()
	}
	return c.nc
}

// heartbeatLoop pings when nothing has arrived for the interval, and
// closes a connection from which nothing has arrived for hbMisses
// intervals. It is owned by the receiver (startHeartbeat).
func (c *client) heartbeatLoop() {
	hb := &c.hb
	defer hb.wg.Done()
	every := c.cfg.Heartbeat
	limit := hbMisses * every
	timer := time.NewTimer(every)
	defer timer.Stop()
	var watched net.Conn // the connection measured
	given := false       // watched was taken as lost
	for {
		select {
		case <-hb.stop:
			return
		case <-timer.C:
		}
		now := time.Now()
		if cur := c.connInUse(); cur != watched || !hb.reading.Load() {
			// A new connection (a resume), whose silence starts now; or
			// the receiver is busy with what came, not waiting.
			if cur != watched {
				watched, given = cur, false
			}
			hb.heardAt.Store(now.UnixNano())
		}
		quiet := now.Sub(time.Unix(0, hb.heardAt.Load()))
		next := every - quiet
		switch {
		case quiet >= limit:
			if !given {
				given = true
				c.log.printf("client: no answer from the server for %v; taking the connection as lost", quiet.Round(100*time.Millisecond))
				watched.Close() // the receiver's read fails: it resumes, or ends the session
			}
			next = every
		case quiet >= every:
			c.sendHeartbeat(protocol.PingFrame)
			next = min(every, limit-quiet)
		}
		timer.Reset(next)
	}
}

// sendHeartbeat writes frame (ping or pong) from a goroutine of its
// own, unless one is on its way already (any frame reaching the server
// tells it as much): a write may wait for the writers, or for a socket
// that takes nothing, and neither the receiver nor the heartbeat's
// timing may wait with it. A write into a connection taken as lost
// fails once it is closed.
func (c *client) sendHeartbeat(frame []byte) {
	hb := &c.hb
	if !hb.sending.CompareAndSwap(false, true) {
		return
	}
	hb.wg.Add(1)
	go func() {
		defer hb.wg.Done()
		defer hb.sending.Store(false)
		c.write(frame)
	}()
}

// heartbeatFrame takes a ping or a pong (header h) from the server: a
// ping is answered.
func (c *client) heartbeatFrame(r *protocol.Reader, h protocol.Header) {
	if !c.hb.on {
		c.log.printf("client: ignoring %s: heartbeat not negotiated", h.Name)
		return
	}
	if _, ok := c.payload(r, h); ok && h.Type == protocol.Ping {
		c.sendHeartbeat(protocol.PongFrame)
	}
}
