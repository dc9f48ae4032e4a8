package terminal

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxBars is the most rows of progress bars shown at once.
const maxBars = 4

// promptText is a prompt as drawn (colors and all) and its width in
// columns.
type promptText struct {
	painted string
	plain   string
	width   int
}

// newPrompt returns the prompt whose text is plain, drawn as painted.
func newPrompt(painted, plain string) promptText {
	return promptText{painted: painted, plain: plain, width: textWidth(plain)}
}

// screen owns the display while the session runs. From the top of the
// screen down it shows: the lines printed so far (scrolling up), a block of
// progress bars (one row per file being moved, only while some are), and,
// while a line is being typed, the input row: the prompt and the line.
//
// The input row is always one row: a line too long for it scrolls
// sideways (see drawInput). So the cursor is always on the row below the
// bars, and anything is drawn by going back to the top of the bars,
// erasing to the end of the screen and drawing again: printed lines never
// clobber the input row, nor it them.
//
// Every drawing happens under mu, so lines printed by several goroutines,
// the bars and the editor's echo never interleave.
type screen struct {
	mu  sync.Mutex
	tty io.Writer // the terminal, as stderr: input row, bars, diagnostics
	out io.Writer // the terminal, as stdout: the protocol's lines
	pal palette
	// width returns the terminal's width in columns.
	width func() int

	// Guarded by mu.
	ed        *editor    // the line being typed
	prompt    promptText // shown before it
	editing   bool       // a line is being typed: the input row is shown
	first     int        // the byte offset in ed.buf of the first character shown
	block     int        // rows of bars now drawn above the input row
	detached  bool
	transfers map[uint64]*transfer // by the client's transfer id
	ticking   bool                 // tickLoop runs
	buf       bytes.Buffer         // the tty bytes of the drawing under way
	cells     []cellSpan           // scratch for drawInput

	stop chan struct{}  // closed by detach: tickLoop ends
	wg   sync.WaitGroup // tickLoop
}

// newScreen returns the screen drawing on tty and out, editing ed.
func newScreen(tty, out io.Writer, pal palette, width func() int, ed *editor) *screen {
	return &screen{
		tty:       tty,
		out:       out,
		pal:       pal,
		width:     width,
		ed:        ed,
		transfers: map[uint64]*transfer{},
		stop:      make(chan struct{}),
	}
}

// paint erases the bars and the input row, runs draw (which starts at
// column 0 of the row where the bars began), and draws the bars and the
// input row again below what it drew. mu must be held.
func (s *screen) paint(draw func()) {
	if s.detached {
		draw()
		s.flush()
		return
	}
	s.clear()
	draw()
	s.drawBlock()
	s.drawInput()
	s.flush()
}

// clear erases the bars and the input row, leaving the cursor at column 0
// of the bars' first row.
func (s *screen) clear() {
	s.buf.WriteByte('\r')
	if s.block > 0 {
		fmt.Fprintf(&s.buf, "\x1b[%dA", s.block)
	}
	s.buf.WriteString("\x1b[J")
	s.block = 0
}

// flush writes the collected tty bytes.
func (s *screen) flush() {
	if s.buf.Len() > 0 {
		s.tty.Write(s.buf.Bytes())
		s.buf.Reset()
	}
}

// drawBlock draws the bars that are due, each on a row of its own.
func (s *screen) drawBlock() {
	if s.detached {
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

// cellSpan is one grapheme cluster of the line: its bytes, the columns it
// takes, and the columns of the clusters before it.
type cellSpan struct{ start, end, width, col int }

// minInput is the fewest columns the line gets; a prompt leaving fewer is
// shortened.
const minInput = 8

// drawInput draws the input row, if a line is being typed, and puts the
// cursor in it. The cursor is at column 0 of the row.
//
// The row never reaches the last column, so it never wraps. A line too
// long for it scrolls sideways: the row shows the part around the cursor,
// with < or > where the line goes on beyond the left or right edge. The
// row is written whole, then again up to the cursor, so that the cursor
// lands where the terminal itself put that character, however wide the
// terminal draws it.
func (s *screen) drawInput() {
	if !s.editing || s.detached {
		return
	}
	line, pos := s.ed.buf, s.ed.pos
	width := s.width()
	p := s.prompt
	if width-1-p.width < minInput {
		p = shortPrompt(p.plain, max(width-1-minInput, 0))
	}
	avail := max(width-1-p.width, 1)

	s.cells = s.cells[:0]
	col := 0
	eachCluster(line, func(start, end, w int) bool {
		s.cells = append(s.cells, cellSpan{start, end, w, col})
		col += w
		return true
	})
	cells := s.cells
	n := len(cells)
	at := 0 // the cluster the cursor is on (n: after the last)
	for at < n && cells[at].end <= pos {
		at++
	}
	first, last := window(cells, at, avail, s.first)
	if first < n {
		s.first = cells[first].start
	} else {
		s.first = len(line)
	}

	start, end, cur := len(line), len(line), len(line)
	if first < n {
		start = cells[first].start
	}
	if last < n {
		end = cells[last].start
	}
	if at < n {
		cur = max(cells[at].start, start)
	}
	var left, right string
	if first > 0 {
		left = s.pal.paint("<", sgrDim)
	}
	if last < n {
		right = s.pal.paint(">", sgrDim)
	}
	b := &s.buf
	b.WriteByte('\r')
	b.WriteString(p.painted)
	b.WriteString(left)
	b.Write(line[start:end])
	b.WriteString(right)
	b.WriteString("\x1b[K\r")
	b.WriteString(p.painted)
	b.WriteString(left)
	b.Write(line[start:cur])
}

// window returns the clusters [first, last) of a line shown in avail
// columns with the cursor on cluster at (len(cells): after the last). The
// whole line if it fits; otherwise a part that holds the cursor's cell,
// the < and > marks where the line goes on, and as much of the line's end
// as fits; it starts as near the cluster at byte offset from (where the
// last one started) as that allows, so the view moves only as the cursor
// pushes it.
func window(cells []cellSpan, at, avail, from int) (first, last int) {
	n := len(cells)
	// pre returns the width of cells[:i].
	pre := func(i int) int {
		if i < n {
			return cells[i].col
		}
		if n == 0 {
			return 0
		}
		return cells[n-1].col + cells[n-1].width
	}
	if pre(n) <= avail {
		return 0, n
	}
	cursor := 1 // the cursor's cell
	if at < n {
		cursor = cells[at].width
	}
	mark := func(i int) int { // the < before cluster i
		if i > 0 {
			return 1
		}
		return 0
	}
	first = n
	for i, c := range cells {
		if c.start >= from {
			first = i
			break
		}
	}
	first = min(first, at)
	// Move right until the cursor's cell fits (a > reserved).
	for first < at && mark(first)+pre(at)-pre(first)+cursor+1 > avail {
		first++
	}
	// Move left while the whole rest of the line fits.
	end := pre(n)
	if at == n {
		end++
	}
	for first > 0 && mark(first-1)+end-pre(first-1) <= avail {
		first--
	}
	// Show what fits after first, with a > if the line goes on.
	last = first
	for last < n {
		more := 1
		if last == n-1 {
			more = 0
		}
		if mark(first)+pre(last+1)-pre(first)+more > avail {
			break
		}
		last++
	}
	return first, max(last, min(at+1, n))
}

// shortPrompt returns the end of the prompt plain in at most width
// columns, after a <.
func shortPrompt(plain string, width int) promptText {
	b := []byte(plain)
	var starts []int
	var widths []int
	eachCluster(b, func(start, _, w int) bool {
		starts = append(starts, start)
		widths = append(widths, w)
		return true
	})
	used, i := 1, len(starts)
	for i > 0 && used+widths[i-1] <= width {
		i--
		used += widths[i]
	}
	text := "<"
	if i < len(starts) {
		text += plain[starts[i]:]
	}
	return newPrompt(text, text)
}

// redrawInput draws the input row again after an edit.
func (s *screen) redrawInput() {
	s.drawInput()
	s.flush()
}

// setPrompt changes the prompt (for a search, and back) and redraws.
func (s *screen) setPrompt(p promptText) {
	s.prompt = p
	s.redrawInput()
}

// beginInput shows the input row for a new line, with the prompt p.
func (s *screen) beginInput(p promptText) {
	s.editing, s.prompt, s.first = true, p, 0
	s.redrawInput()
}

// submit ends the input row of an entered line: the line is left on the
// screen whole, after the prompt p, and the bars move below it.
func (s *screen) submit(p promptText, line string) {
	s.editing = false
	s.paint(func() {
		s.buf.WriteString(p.painted)
		s.buf.WriteString(line)
		s.buf.WriteString("\r\n")
	})
}

// endInput takes the input row off the screen: the input has ended.
func (s *screen) endInput() {
	s.editing = false
	s.paint(func() {})
}

// clearScreen clears the whole screen and draws the bars and the input
// row at its top.
func (s *screen) clearScreen() {
	s.buf.WriteString("\x1b[H\x1b[2J")
	s.block = 0
	s.drawBlock()
	s.drawInput()
	s.flush()
}

// print shows lines of text above the bars and the input row: on w
// (stdout or the tty), each line colored by color.
func (s *screen) print(w io.Writer, p []byte, color func(string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.printLocked(w, p, color)
}

// printLocked is print with mu held.
func (s *screen) printLocked(w io.Writer, p []byte, color func(string) string) {
	text := strings.TrimSuffix(string(p), "\n")
	var b bytes.Buffer
	for line := range strings.SplitSeq(text, "\n") {
		b.WriteString(color(line))
		b.WriteString("\r\n")
	}
	s.paint(func() {
		if w == s.tty {
			s.buf.Write(b.Bytes())
			return
		}
		s.flush() // keep the order: erase first, then the line
		w.Write(b.Bytes())
	})
}

// bell rings the terminal's bell.
func (s *screen) bell() {
	s.buf.WriteByte('\a')
}

// progress records a file transfer's progress (client.Hooks.Progress).
func (s *screen) progress(id uint64, dir, name string, done, total int64, finished bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return
	}
	key := id
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
	if t.shown {
		s.paint(func() {}) // the session says how it went
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
			s.paint(func() {})
		}
		s.mu.Unlock()
	}
}

// anyDue reports whether some transfer's bar should be on screen at now.
func (s *screen) anyDue(now time.Time) bool {
	for _, t := range s.transfers {
		if t.due(now) {
			return true
		}
	}
	return false
}

// resize redraws the bars and the input row for the terminal's new size.
func (s *screen) resize() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.detached {
		s.paint(func() {})
	}
}

// detach takes the input row and the bars off the screen for good: later
// output goes straight to the terminal. It waits for tickLoop to end.
func (s *screen) detach() {
	s.mu.Lock()
	if s.detached {
		s.mu.Unlock()
		return
	}
	s.clear()
	s.flush()
	s.detached, s.editing = true, false
	clear(s.transfers)
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
}
