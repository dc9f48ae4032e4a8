package server

import (
	"io"
	"log/slog"
	"sync"
)

// maxPrintBacklog bounds the bytes of stdout lines waiting to be written.
const maxPrintBacklog = 64 << 20

// printer writes the server's stdout lines in order, each line whole. It
// never makes a connection wait for stdout: lines are appended to a
// buffer that a writer goroutine, started on demand, flushes as soon as it
// can. A stdout that takes nothing while more than maxPrintBacklog waits
// (nobody reads it) loses the lines beyond, counted and logged, rather
// than stalling the chat.
type printer struct {
	w       io.Writer
	log     *slog.Logger
	dropped func() // counts a dropped line

	mu      sync.Mutex
	cond    *sync.Cond // signalled when the writer makes progress; uses mu
	buf     []byte     // guarded by mu
	writing bool       // a writer goroutine runs; guarded by mu
	lost    int        // lines dropped since the last report; guarded by mu
	spare   []byte     // owned by the writer
}

func newPrinter(w io.Writer, log *slog.Logger, dropped func()) *printer {
	p := &printer{w: w, log: log, dropped: dropped}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// println prints the concatenation of parts and a newline.
func (p *printer) println(parts ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > maxPrintBacklog {
		if p.lost == 0 {
			p.log.Warn("stdout takes nothing: dropping event lines until it does", "backlog_bytes", len(p.buf))
		}
		p.lost++
		p.dropped()
		return
	}
	for _, s := range parts {
		p.buf = append(p.buf, s...)
	}
	p.buf = append(p.buf, '\n')
	if !p.writing {
		p.writing = true
		go p.flushLoop()
	}
}

// flushLoop writes what println buffered until nothing is left. It is
// started by println and ends when the buffer is empty.
//
// Of the project's batching writers (sendQueue.writeLoop, the web's
// wsConn.flush, the cluster's outbound.run; issue 24 item 10) it is the
// closest to wsConn.flush, and differs from it where it matters: a full
// buffer never makes println wait (lines beyond maxPrintBacklog are
// dropped and counted, since the chat must not stall on its stdout), a
// failed write ends nothing, and the buffer and its spare are kept, there
// being one printer per server.
func (p *printer) flushLoop() {
	for {
		p.mu.Lock()
		if p.lost > 0 && len(p.buf) <= maxPrintBacklog {
			p.log.Warn("stdout takes lines again", "dropped_lines", p.lost)
			p.lost = 0
		}
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
