package terminal

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// marker is what the screen hands the line editor to write when it wants
// to draw above the input line: the editor erases the prompt and what is
// typed, writes the marker, then draws them again. The screen's device
// writer runs the pending drawing where the marker would go. No key the
// editor echoes is a NUL, so the marker never appears otherwise.
var marker = []byte{0}

// maxBars is the most rows of progress bars shown at once.
const maxBars = 4

// screen owns the display while the session runs. From the top of the
// screen down it shows: the lines printed so far (scrolling up), a block of
// progress bars (one row per file being moved, only while some are), and
// the prompt with the line being typed, drawn by the line editor vt.
//
// Every drawing goes through paint, under mu, so lines printed by several
// goroutines, the bars and the editor's echo never interleave: the editor
// takes its own lock for each key it handles and for each Write, and mu is
// always taken before it.
type screen struct {
	mu  sync.Mutex
	vt  *term.Terminal
	tty io.Writer // the terminal, as stderr: editor, bars, diagnostics
	out io.Writer // the terminal, as stdout: the protocol's lines
	pal palette
	// width returns the terminal's width in columns.
	width func() int

	op      atomic.Pointer[func()] // the drawing to run at the marker
	discard atomic.Bool            // detached: drop the editor's output

	// Guarded by mu.
	block     int  // rows of bars now drawn above the prompt
	holdBlock bool // a line is being entered: keep the bars off screen
	detached  bool
	transfers map[string]*transfer // by direction and name
	ticking   bool                 // tickLoop runs
	buf       bytes.Buffer         // the tty bytes of the drawing under way

	stop chan struct{}  // closed by detach: tickLoop ends
	wg   sync.WaitGroup // tickLoop
}

func newScreen(tty, out io.Writer, pal palette, width func() int) *screen {
	return &screen{
		tty:       tty,
		out:       out,
		pal:       pal,
		width:     width,
		transfers: map[string]*transfer{},
		stop:      make(chan struct{}),
	}
}

// deviceWriter is the writing side the line editor is given.
type deviceWriter struct{ s *screen }

// Write implements io.Writer for the line editor: the marker runs the
// pending drawing; anything else is the editor's own output.
func (d deviceWriter) Write(p []byte) (int, error) {
	if bytes.Equal(p, marker) {
		if f := d.s.op.Load(); f != nil {
			(*f)()
		}
		return len(p), nil
	}
	if d.s.discard.Load() {
		return len(p), nil
	}
	return d.s.tty.Write(p)
}

// paint runs draw with the prompt and the typed line out of the way and
// draws them again after it. draw starts at column 0 of the row where the
// prompt was, just below the bars. mu must be held.
func (s *screen) paint(draw func()) {
	if s.detached {
		draw()
		s.flush()
		return
	}
	ran := false
	f := func() {
		ran = true
		draw()
		s.flush()
	}
	s.op.Store(&f)
	s.vt.Write(marker)
	s.op.Store(nil)
	if !ran {
		// The editor wrote the marker in a way deviceWriter did not
		// see: still show what was to be shown, if not in its place.
		draw()
		s.flush()
	}
}

// flush writes the collected tty bytes.
func (s *screen) flush() {
	if s.buf.Len() > 0 {
		s.tty.Write(s.buf.Bytes())
		s.buf.Reset()
	}
}

// clearBlock erases the bars and everything below them, leaving the
// cursor at column 0 of the bars' first row. It runs inside paint.
func (s *screen) clearBlock() {
	if s.block > 0 {
		fmt.Fprintf(&s.buf, "\x1b[%dA", s.block)
	}
	s.buf.WriteString("\r\x1b[J")
	s.block = 0
}

// drawBlock draws the bars that are due. It runs inside paint, after
// clearBlock.
func (s *screen) drawBlock() {
	if s.holdBlock || s.detached {
		return
	}
	now := time.Now()
	width := s.width()
	var due []*transfer
	for _, t := range s.transfers {
		if t.due(now) {
			due = append(due, t)
		}
	}
	slices.SortFunc(due, func(a, b *transfer) int { return a.start.Compare(b.start) })
	for i, t := range due {
		if i == maxBars-1 && len(due) > maxBars {
			fmt.Fprintf(&s.buf, "... and %d more transfers\r\n", len(due)-i)
			s.block++
			break
		}
		t.shown = true
		s.buf.WriteString(t.bar(now, width, s.pal))
		s.buf.WriteString("\r\n")
		s.block++
	}
}

// print shows lines of text above the prompt: on w (stdout or the tty),
// each line colored by color.
func (s *screen) print(w io.Writer, p []byte, color func(string) string) {
	text := string(p)
	if len(text) > 0 && text[len(text)-1] == '\n' {
		text = text[:len(text)-1]
	}
	var b bytes.Buffer
	for _, line := range splitLines(text) {
		b.WriteString(color(line))
		b.WriteString("\r\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paint(func() {
		if !s.detached {
			s.clearBlock()
		}
		if w != s.tty {
			s.flush() // keep the order: erase first, then the line
		}
		if w == s.tty {
			s.buf.Write(b.Bytes())
		} else {
			w.Write(b.Bytes())
		}
		s.drawBlock()
	})
}

func splitLines(s string) []string {
	var lines []string
	for {
		i := bytes.IndexByte([]byte(s), '\n')
		if i < 0 {
			return append(lines, s)
		}
		lines = append(lines, s[:i])
		s = s[i+1:]
	}
}

// progress records a file transfer's progress (client.Hooks.Progress).
func (s *screen) progress(dir, name string, done, total int64, finished bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return
	}
	key := dir + "\x00" + name
	t := s.transfers[key]
	if t == nil {
		t = &transfer{dir: dir, name: name, total: total, start: now}
		s.transfers[key] = t
	}
	t.observe(now, done)
	if !finished {
		if !s.ticking {
			s.ticking = true
			s.wg.Add(1)
			go s.tickLoop()
		}
		return
	}
	delete(s.transfers, key)
	if dir == "send" && done == total {
		line := s.pal.paint(t.summary(now), sgrGreen) + "\r\n"
		s.paint(func() {
			s.clearBlock()
			s.buf.WriteString(line)
			s.drawBlock()
		})
	} else if t.shown {
		s.paint(func() {
			s.clearBlock()
			s.drawBlock()
		})
	}
}

// tickLoop redraws the bars every redrawEvery while transfers go on, so
// that a stalled one shows its rate falling. It is started by progress and
// ends when no transfer is left or the screen is detached.
func (s *screen) tickLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(redrawEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.stop:
			return
		}
		s.mu.Lock()
		if s.detached || len(s.transfers) == 0 {
			s.ticking = false
			s.mu.Unlock()
			return
		}
		now := time.Now()
		for _, t := range s.transfers {
			t.observe(now, t.done)
		}
		if s.block > 0 || s.anyDue(now) {
			s.paint(func() {
				s.clearBlock()
				s.drawBlock()
			})
		}
		s.mu.Unlock()
	}
}

func (s *screen) anyDue(now time.Time) bool {
	if s.holdBlock {
		return false
	}
	for _, t := range s.transfers {
		if t.due(now) {
			return true
		}
	}
	return false
}

// beforeEnter is called just before the editor gets an Enter key: the
// entered line will stay on screen as it is, so the bars leave the space
// above it and come back below it (afterLine).
func (s *screen) beforeEnter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdBlock = true
	if s.block > 0 {
		s.paint(s.clearBlock)
	}
}

// afterLine is called when the editor has returned a line or an error.
func (s *screen) afterLine() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdBlock = false
	if s.anyDue(time.Now()) {
		s.paint(func() {
			s.clearBlock()
			s.drawBlock()
		})
	}
}

// resize tells the editor the terminal's new size and redraws the bars.
func (s *screen) resize(width, height int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return
	}
	s.vt.SetSize(width, height)
	if s.block > 0 {
		s.paint(func() {
			s.clearBlock()
			s.drawBlock()
		})
	}
}

// detach takes the prompt, the typed line and the bars off the screen for
// good and stops the editor's drawing: later output goes straight to the
// terminal. It waits for tickLoop to end.
func (s *screen) detach() {
	s.mu.Lock()
	if s.detached {
		s.mu.Unlock()
		return
	}
	s.vt.SetPrompt("")
	s.paint(func() {
		s.clearBlock()
		s.discard.Store(true) // the editor's redraw after this is dropped
	})
	s.detached = true
	clear(s.transfers)
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
}
