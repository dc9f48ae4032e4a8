package client

import (
	"time"
)

// progress returns a writer counting bytes of a transfer for the hooks.
func (c *client) progress(dir, name string, total int64) *progressCounter {
	return &progressCounter{fn: c.cfg.Hooks.Progress, dir: dir, name: name, total: total}
}

// progressCounter counts the bytes of one transfer and reports them to
// the Progress hook.
type progressCounter struct {
	fn          func(dir, name string, done, total int64, finished bool)
	dir, name   string
	done, total int64
	last        time.Time
}

// Write counts b and reports progress at most every 100 ms.
func (p *progressCounter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.fn != nil && time.Since(p.last) >= 100*time.Millisecond {
		p.last = time.Now()
		p.fn(p.dir, p.name, p.done, p.total, false)
	}
	return len(b), nil
}

// finish reports the end of the transfer.
func (p *progressCounter) finish() {
	if p.fn != nil {
		p.fn(p.dir, p.name, p.done, p.total, true)
	}
}
