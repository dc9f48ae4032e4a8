package client

import (
	"sync"
	"time"
)

// progressEvery is the most often a transfer's progress is reported.
const progressEvery = 100 * time.Millisecond

// progress returns a writer counting bytes of a transfer for the hooks.
func (c *client) progress(dir, name string, total int64) *progressCounter {
	return &progressCounter{fn: c.cfg.Hooks.Progress, id: c.transfers.Add(1), dir: dir, name: name, total: total}
}

// progressCounter counts the bytes of one transfer and reports them to
// the Progress hook: at most every progressEvery, and progressEvery after
// bytes that were not reported, so that a transfer that stops moving
// shows how far it got.
type progressCounter struct {
	fn        func(id uint64, dir, name string, done, total int64, finished bool)
	id        uint64
	dir, name string
	total     int64

	mu       sync.Mutex
	done     int64       // guarded by mu
	last     time.Time   // when done was last reported; guarded by mu
	trailing *time.Timer // reports bytes not yet reported; guarded by mu
	ended    bool        // finish was called; guarded by mu
}

// Write counts b and reports progress at most every progressEvery.
func (p *progressCounter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(len(b))
	if p.fn == nil || p.ended {
		return len(b), nil
	}
	if since := time.Since(p.last); since >= progressEvery {
		p.reportLocked()
	} else if p.trailing == nil {
		p.trailing = time.AfterFunc(progressEvery-since, p.trail)
	}
	return len(b), nil
}

// trail reports the bytes counted since the last report.
func (p *progressCounter) trail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trailing = nil
	if !p.ended {
		p.reportLocked()
	}
}

func (p *progressCounter) reportLocked() {
	p.last = time.Now()
	p.fn(p.id, p.dir, p.name, p.done, p.total, false)
}

// moved returns the bytes counted so far.
func (p *progressCounter) moved() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// finish reports the end of the transfer; nothing is reported after it.
func (p *progressCounter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	if p.trailing != nil {
		p.trailing.Stop()
		p.trailing = nil
	}
	if p.fn != nil {
		p.fn(p.id, p.dir, p.name, p.done, p.total, true)
	}
}
