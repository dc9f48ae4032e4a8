package server

import (
	"time"

	"github.com/gochat/chat/internal/protocol"
)

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

// deliver sends a frame of type t to peers, counts it, and paces the
// sender: a peer whose backlog leaves no room for the frame below the
// pace mark (while it still takes bytes) gets it once there is room, and
// the sender reads nothing more meanwhile, so a flood is slowed to what
// its recipients take instead of cutting them off. Then the sender waits
// as long as its budget of bytes delivered per second asks.
func (c *conn) deliver(peers []Peer, t protocol.Type, frame []byte) error {
	c.countOut(t, len(peers), len(frame))
	var later []Peer
	for _, p := range peers {
		if retry, _ := p.Offer(frame); retry != nil {
			later = append(later, p)
		}
	}
	for _, p := range later {
		if err := c.offerWhenRoom(p, frame); err != nil {
			return err
		}
	}
	if c.budget != nil {
		return c.pause(pauseBytes, c.budget.spend(float64(len(frame))*float64(len(peers))))
	}
	return nil
}

// offerWhenRoom offers frame to p until p takes it, is gone, or has taken
// nothing for paceGrace (then the frame is queued whatever the backlog,
// and p overflows its queue or stalls to be cut off, as a slow consumer
// must be, holding nobody back), or until this connection closes.
func (c *conn) offerWhenRoom(p Peer, frame []byte) error {
	c.m.paused[pauseBacklog].Inc()
	start := time.Now()
	defer func() { c.m.pausedSeconds[pauseBacklog].Add(time.Since(start).Seconds()) }()
	// Offer again now and then, since a peer that stops taking bytes
	// closes no channel.
	tick := time.NewTicker(progressTick)
	defer tick.Stop()
	for {
		retry, err := p.Offer(frame)
		if retry == nil || err != nil {
			return nil
		}
		select {
		case <-retry:
		case <-tick.C:
		case <-c.done:
			return errConnClosing
		}
	}
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
	return b.spendAt(n, time.Now())
}

// spendAt is spend, short of tokens, at time now.
func (b *byteBudget) spendAt(n float64, now time.Time) time.Duration {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate) - n
	b.last = now
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
