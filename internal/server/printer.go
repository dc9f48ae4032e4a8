package server

import (
	"io"
	"sync"
)

// maxPrintBacklog bounds the bytes of stdout lines waiting to be written;
// past it, printing waits for the writer.
const maxPrintBacklog = 64 << 20

// printer writes the server's stdout lines in order, each line whole. It
// never makes a connection wait for a slow stdout unless the backlog grows
// past maxPrintBacklog: lines are appended to a buffer that a writer
// goroutine, started on demand, flushes as soon as it can.
type printer struct {
	w io.Writer

	mu      sync.Mutex
	cond    *sync.Cond // signalled when the writer makes progress; uses mu
	buf     []byte     // guarded by mu
	writing bool       // a writer goroutine runs; guarded by mu
	spare   []byte     // owned by the writer
}

func newPrinter(w io.Writer) *printer {
	p := &printer{w: w}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// println prints the concatenation of parts and a newline.
func (p *printer) println(parts ...string) {
	p.mu.Lock()
	for len(p.buf) > maxPrintBacklog {
		p.cond.Wait()
	}
	for _, s := range parts {
		p.buf = append(p.buf, s...)
	}
	p.buf = append(p.buf, '\n')
	if !p.writing {
		p.writing = true
		go p.flushLoop()
	}
	p.mu.Unlock()
}

func (p *printer) flushLoop() {
	for {
		p.mu.Lock()
		if len(p.buf) == 0 {
			p.writing = false
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		b := p.buf
		p.buf = p.spare[:0]
		p.mu.Unlock()

		_, _ = p.w.Write(b) // a broken stdout must not stop the server

		p.mu.Lock()
		p.spare = b[:0]
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// flush waits until every line printed so far has been written.
func (p *printer) flush() {
	p.mu.Lock()
	for p.writing {
		p.cond.Wait()
	}
	p.mu.Unlock()
}
