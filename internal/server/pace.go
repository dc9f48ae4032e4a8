package server

import "time"

// pauseCause says why a sender's reading was paused.
type pauseCause uint8

// The pause causes.
const (
	pauseFrames  pauseCause = iota // flood control: frames per second
	pauseBytes                     // flood control: bytes delivered per second
	pauseBacklog                   // a recipient has too much waiting
	numPauseCauses
)

var pauseCauseNames = [numPauseCauses]string{
	pauseFrames:  "frames",
	pauseBytes:   "bytes",
	pauseBacklog: "backlog",
}

// String returns the cause as the metrics name it.
func (p pauseCause) String() string { return pauseCauseNames[p] }

// errConnClosing is returned when the connection started closing while
// its reading was paused.
var errConnClosing = &endError{reason: reasonServerShutdown}

// paceReads waits as long as flood control asks before the next frame is
// read.
func (c *conn) paceReads() error {
	if c.flood == nil {
		return nil
	}
	d := c.flood.Reserve().Delay()
	if d > 0 {
		c.m.floodDelays.Inc() // the older name of chat_senders_paused_total{cause="frames"}
	}
	return c.pause(pauseFrames, d)
}

// pace is called after a frame of size bytes was delivered to peers: it
// pauses the sender, before it reads its next frame, while any of them
// has more than the pace mark waiting (so a flood is slowed to what its
// recipients take, rather than cutting them off), and for as long as its
// budget of bytes delivered per second asks.
func (c *conn) pace(peers []Peer, size int) error {
	if c.srv.cfg.PaceBacklog > 0 {
		for _, p := range peers {
			if err := c.waitBacklog(p); err != nil {
				return err
			}
		}
	}
	if c.budget != nil {
		return c.pause(pauseBytes, c.budget.spend(float64(size)*float64(len(peers))))
	}
	return nil
}

// waitBacklog waits until p's backlog is below the pace mark, p is gone
// (a recipient that takes nothing is cut off after the stall limit), or
// this connection closes.
func (c *conn) waitBacklog(p Peer) error {
	wait := p.Backlog()
	if wait == nil {
		return nil
	}
	c.m.paused[pauseBacklog].Inc()
	start := time.Now()
	defer func() { c.m.pausedSeconds[pauseBacklog].Add(time.Since(start).Seconds()) }()
	for ; wait != nil; wait = p.Backlog() {
		select {
		case <-wait:
		case <-c.done:
			return errConnClosing
		}
	}
	return nil
}

// pause waits d, counting it under cause, unless the connection closes
// first.
func (c *conn) pause(cause pauseCause, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	c.m.paused[cause].Inc()
	c.m.pausedSeconds[cause].Add(d.Seconds())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.done:
		return errConnClosing
	}
}

// byteBudget is a token bucket of bytes delivered per second. It is owned
// by its connection's serve goroutine, and reads the clock only when it
// runs short.
type byteBudget struct {
	rate, burst float64 // bytes per second, and the most saved up
	tokens      float64 // may go below zero: the debt is waited off
	last        time.Time
}

func newByteBudget(rate float64, burst int64) *byteBudget {
	return &byteBudget{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// spend takes n bytes from the budget and returns how long to wait before
// the next frame.
func (b *byteBudget) spend(n float64) time.Duration {
	if b.tokens >= n {
		b.tokens -= n
		return 0
	}
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate) - n
	b.last = now
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
