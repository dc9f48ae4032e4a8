package server

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// The heartbeat extension (docs/PROTOCOL.md, "heartbeat"; issue 22): a
// connection whose peer vanished without a FIN or a RST (the network
// gone, a NAT that forgot the flow, a peer that stopped reading) sends
// nothing more, and TCP tells nobody for minutes. A client that asked
// for heartbeat pings when it has heard nothing or said nothing for its
// interval; the server answers every ping with a pong, pings a
// connection that has been silent for half of HeartbeatTimeout (a page
// in a hidden browser tab runs its timers once a minute, but answers a
// ping from its message handler at once), and cuts off one that has
// been silent for all of it. The cut is a lost connection: a session
// granted resume waits for its client, as after a read error.
//
// Cheap at scale: no timer per connection or per frame. The serve
// goroutine sets two flags around each header it reads; one sweeper per
// server, running while some connection has a heartbeat, looks at every
// such connection eight times per timeout. A connection's silence is
// measured from the last sweep that found a frame had come: a lower
// bound, so nobody is pinged or cut off early, however late the sweeper
// runs on a loaded machine; it is cut off at most a quarter of the
// timeout late. A connection counts as silent only while it waits for a
// frame: one busy with a long frame (a file's payload) or paced (its
// recipients are behind) is not, since then the server is what does not
// read.

// DefaultHeartbeatTimeout is how long a connection granted heartbeat may
// send nothing before the server cuts it off: a client pings every 5 s
// by default, so three of its pings in a row must be lost.
const DefaultHeartbeatTimeout = 15 * time.Second

// hbTicks is the sweeper's ticks per timeout.
const hbTicks = 8

// hbState is a connection's part of the heartbeat.
type hbState struct {
	waiting atomic.Bool // the serve goroutine waits for the next frame
	heard   atomic.Bool // a frame arrived since the sweeper last looked

	// Owned by the sweeper (and by watchHeartbeat before it is watched).
	heardAt time.Time // the last sweep that found a frame had come, or that it was busy
	pinged  bool      // pinged since heardAt
}

// hbWaiting notes that the serve goroutine waits for the next frame.
func (c *conn) hbWaiting() {
	if c.hbOn {
		c.hb.waiting.Store(true)
	}
}

// hbHeard notes that a frame (or the end of the stream) arrived.
func (c *conn) hbHeard() {
	if c.hbOn {
		c.hb.waiting.Store(false)
		if !c.hb.heard.Load() {
			c.hb.heard.Store(true)
		}
	}
}

// handlePing answers a ping with a pong, which is never counted for a
// resume.
func (c *conn) handlePing() error {
	if !c.hbOn {
		return fmt.Errorf("%w: ping without heartbeat", protocol.ErrMalformed)
	}
	_, err := c.push(protocol.PongFrame, false)
	return err
}

// handlePong takes a pong: its arrival (hbHeard) is all that counts.
func (c *conn) handlePong() error {
	if !c.hbOn {
		return fmt.Errorf("%w: pong without heartbeat", protocol.ErrMalformed)
	}
	return nil
}

// heartbeats is the set of the server's connections granted heartbeat
// that are past their join, and the sweeper that watches them.
type heartbeats struct {
	mu    sync.Mutex
	conns map[*conn]struct{} // guarded by mu
	stop  chan struct{}      // closed to end the running sweeper; nil when none runs; guarded by mu
	wg    sync.WaitGroup     // the sweepers; Shutdown waits for them
}

// watchHeartbeat puts c under the sweeper's watch, if it was granted
// heartbeat, until the returned function is called. The serve goroutine
// calls it once the connection holds its user.
func (c *conn) watchHeartbeat() (unwatch func()) {
	if !c.hbOn {
		return func() {}
	}
	s := c.srv
	h := &s.heartbeats
	h.mu.Lock()
	if h.conns == nil {
		h.conns = make(map[*conn]struct{})
	}
	c.hb.heardAt = time.Now()
	h.conns[c] = struct{}{}
	if h.stop == nil {
		h.stop = make(chan struct{})
		h.wg.Add(1)
		go s.sweepHeartbeats(h.stop)
	}
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.conns, c)
		if len(h.conns) == 0 && h.stop != nil {
			close(h.stop)
			h.stop = nil
		}
	}
}

// sweepHeartbeats looks at every watched connection hbTicks times per
// HeartbeatTimeout, until stop is closed (the last one left): it pings
// one silent for half the timeout, and cuts off one silent for all of
// it. It is started by watchHeartbeat and owned by the server.
func (s *Server) sweepHeartbeats(stop <-chan struct{}) {
	h := &s.heartbeats
	defer h.wg.Done()
	timeout := s.cfg.HeartbeatTimeout
	tick := time.NewTicker(max(timeout/hbTicks, time.Millisecond))
	defer tick.Stop()
	var ping, cut []*conn
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		ping, cut = ping[:0], cut[:0]
		h.mu.Lock()
		select {
		case <-stop:
			// A new sweeper may run already: this one must not
			// count a tick twice.
			h.mu.Unlock()
			return
		default:
		}
		for c := range h.conns {
			if !c.hb.waiting.Load() || c.hb.heard.Swap(false) {
				c.hb.heardAt, c.hb.pinged = now, false
				continue
			}
			switch quiet := now.Sub(c.hb.heardAt); {
			case quiet >= timeout:
				cut = append(cut, c)
			case quiet >= timeout/2 && !c.hb.pinged:
				c.hb.pinged = true
				ping = append(ping, c)
			}
		}
		h.mu.Unlock()
		for _, c := range ping {
			c.push(protocol.PingFrame, false)
		}
		for _, c := range cut {
			c.kill(reasonHeartbeat, fmt.Errorf("nothing arrived for %v", timeout))
		}
		clear(ping)
		clear(cut)
	}
}
