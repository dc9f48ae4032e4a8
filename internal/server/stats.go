package server

import "github.com/gochat/chat/internal/protocol"

// connStats holds counts not yet added to the shared metrics, so that the
// hot path touches no shared cache line.
type connStats struct {
	framesIn, bytesIn, framesOut, bytesOut [protocol.NumTypes]int64
	pending                                int // deliveries since the last flush
}

// readHeader reads the next frame's header and counts the frame.
func (c *conn) readHeader() (protocol.Header, error) {
	h, err := c.r.ReadHeader()
	if err != nil {
		return h, err
	}
	if c.stats == nil {
		c.stats = new(connStats)
	}
	c.stats.framesIn[h.Type]++
	c.stats.bytesIn[h.Type] += h.Size()
	if limit := c.srv.cfg.limits().MaxPayload(protocol.ToServer, h.Type); limit >= 0 && h.Length <= limit {
		// A payload over its type's limit is refused unread: only what
		// may arrive counts (a declared length may be near 2^63).
		c.stats.bytesIn[h.Type] += h.Length
	}
	return h, nil
}

// countOut counts a frame of size bytes and type t queued for n peers.
func (c *conn) countOut(t protocol.Type, n, size int) {
	if c.stats == nil {
		c.stats = new(connStats)
	}
	c.stats.framesOut[t] += int64(n)
	c.stats.bytesOut[t] += int64(size * n)
	if c.stats.pending++; c.stats.pending >= 256 || c.r.Buffered() == 0 {
		// Counted before the peers can see the frame, in batches while
		// more frames wait to be decoded.
		c.flushStats()
	}
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
