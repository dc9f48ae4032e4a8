package protocol

import (
	"io"
	"sync"
)

// inBuffer is a read buffer in the manner of bufio.Reader, but its memory
// can be handed back while nothing is buffered (Release), so that a
// connection waiting for input holds no buffer. Buffers of the pool's size
// come from and go back to a shared sync.Pool.
type inBuffer struct {
	rd   io.Reader
	size int
	pool *sync.Pool // nil: the buffer is never released
	buf  []byte     // nil after Release
	own  bool       // buf is not from the pool
	r, w int        // buf[r:w] is unread
	err  error      // a read error not yet returned
}

// pools holds one buffer pool per buffer size.
var pools sync.Map // int -> *sync.Pool

func poolFor(size int) *sync.Pool {
	if p, ok := pools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := pools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

func (b *inBuffer) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// acquire makes sure b has a buffer.
func (b *inBuffer) acquire() {
	if b.buf != nil {
		return
	}
	if b.pool != nil {
		b.buf, b.own = *b.pool.Get().(*[]byte), false
	} else {
		b.buf, b.own = make([]byte, b.size), true
	}
	b.r, b.w = 0, 0
}

// release hands the buffer back if nothing is buffered.
func (b *inBuffer) release() {
	if b.pool == nil || b.buf == nil || b.r != b.w {
		return
	}
	buf, own := b.buf, b.own
	b.buf, b.r, b.w = nil, 0, 0
	if !own {
		b.pool.Put(&buf)
	}
}

// fill reads once into the free part of the buffer.
func (b *inBuffer) fill() {
	b.acquire()
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	for range 100 {
		n, err := b.rd.Read(b.buf[b.w:])
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

// Buffered returns the number of unread buffered bytes.
func (b *inBuffer) Buffered() int { return b.w - b.r }

// ReadByte returns the next byte.
func (b *inBuffer) ReadByte() (byte, error) {
	for b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		b.fill()
	}
	c := b.buf[b.r]
	b.r++
	return c, nil
}

// Read reads into p: from the buffer if it holds anything, else straight
// from the source when p is at least a buffer long, else through the
// buffer. It reads from the source at most once.
func (b *inBuffer) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if b.Buffered() > 0 {
			return 0, nil
		}
		return 0, b.readErr()
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= b.size {
			n, err := b.rd.Read(p)
			return n, err
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// Peek returns the next n buffered bytes without consuming them, reading
// as needed; n must not exceed the buffer size. With fewer than n bytes
// available it returns those and the error that stopped it.
func (b *inBuffer) Peek(n int) ([]byte, error) {
	b.acquire()
	for b.w-b.r < n && b.err == nil {
		b.fill()
	}
	if avail := b.w - b.r; avail < n {
		return b.buf[b.r:b.w], b.readErr()
	}
	return b.buf[b.r : b.r+n], nil
}

// Discard skips the next n bytes, reading as needed.
func (b *inBuffer) Discard(n int) (int, error) {
	done := 0
	for done < n {
		if b.r == b.w {
			if b.err != nil {
				return done, b.readErr()
			}
			b.fill()
			continue
		}
		k := min(n-done, b.w-b.r)
		b.r += k
		done += k
	}
	return done, nil
}
