package chattest

import (
	"io"
	"sync"
	"time"
)

// throttleChunk is the most a throttled reader takes from its source at
// once, so that it keeps close to its rate from the first read.
const throttleChunk = 4 << 10

// throttled reads from r at about rate bytes per second until fast is
// closed, then as fast as r gives. Its sleeps are its speed (a client on
// a slow link), not waits for an event.
type throttled struct {
	r     io.Reader
	rate  int
	fast  chan struct{}
	start time.Time
	total int
}

// Throttle returns a reader of r that keeps to about rate bytes per
// second, a slow but honest reader, and unthrottle, which lets it read as
// fast as r gives from then on (it may be called more than once).
func Throttle(r io.Reader, rate int) (slow io.Reader, unthrottle func()) {
	t := &throttled{r: r, rate: rate, fast: make(chan struct{}), start: time.Now()}
	var once sync.Once
	return t, func() { once.Do(func() { close(t.fast) }) }
}

func (t *throttled) Read(p []byte) (int, error) {
	select {
	case <-t.fast:
		return t.r.Read(p)
	default:
	}
	n, err := t.r.Read(p[:min(len(p), throttleChunk)])
	t.total += n
	time.Sleep(time.Until(t.start.Add(time.Duration(t.total) * time.Second / time.Duration(t.rate))))
	return n, err
}
