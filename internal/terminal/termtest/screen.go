// Package termtest emulates enough of an xterm-like screen for tests to
// check what a terminal program displays: the rows of text as a person
// would see them, after cursor movement, erasing and scrolling.
//
// It understands printable UTF-8, CR, LF, BS, TAB, and the CSI sequences
// A B C D G H K J m (SGR is ignored) and private modes (ignored). Lines
// wrap with the deferred wrap of xterm: writing the last column leaves the
// cursor there until the next printable rune.
//
// Characters take the columns a grapheme-aware terminal gives them
// (github.com/rivo/uniseg): East Asian wide characters and emoji two, a
// character that extends the grapheme cluster just written (a combining
// mark, a variation selector, the rest of a ZWJ sequence) none, joining
// that cell. A wide character that does not fit on the row wraps whole, as
// in xterm; writing over half of a wide character blanks the other half.
package termtest

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// cell is one column of the screen.
type cell struct {
	s    string // the grapheme cluster shown, "" for the right half of a wide one
	wide bool   // s takes this column and the next
}

// blankCell is an empty column.
var blankCell = cell{s: " "}

// Screen is an emulated terminal screen. It is safe for concurrent use:
// one goroutine writes what the program printed, others wait for and read
// the display.
type Screen struct {
	mu         sync.Mutex
	rows, cols int
	grid       [][]cell
	scrolled   []string // rows that scrolled off the top, oldest first
	r, c       int
	wrapNext   bool // the last column was written; the next rune wraps
	// lastR and lastC are the cell written last, which a rune extending
	// its grapheme cluster joins; lastR is -1 after anything else.
	lastR, lastC int
	pending      []byte // an incomplete escape sequence or UTF-8 rune
	raw          []byte // everything written
	changed      chan struct{}
}

// New returns a blank screen of rows by cols.
func New(rows, cols int) *Screen {
	s := &Screen{rows: rows, cols: cols, lastR: -1, changed: make(chan struct{})}
	s.grid = make([][]cell, rows)
	for i := range s.grid {
		s.grid[i] = blank(cols)
	}
	return s
}

// blank returns a row of n blank cells.
func blank(n int) []cell {
	r := make([]cell, n)
	for i := range r {
		r[i] = blankCell
	}
	return r
}

// Write interprets p as terminal output. It never fails.
func (s *Screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw = append(s.raw, p...)
	b := append(s.pending, p...)
	s.pending = nil
	for len(b) > 0 {
		n := s.step(b)
		if n == 0 { // incomplete: wait for more
			s.pending = append([]byte(nil), b...)
			break
		}
		b = b[n:]
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

// step interprets one rune or control sequence at the start of b and
// returns the bytes it used, or 0 if b holds only part of one.
func (s *Screen) step(b []byte) int {
	if b[0] < 0x20 || b[0] == 0x7f {
		s.lastR = -1
	}
	switch b[0] {
	case '\r':
		s.c, s.wrapNext = 0, false
		return 1
	case '\n':
		s.lineFeed()
		return 1
	case '\b':
		if s.c > 0 {
			s.c--
		}
		s.wrapNext = false
		return 1
	case '\t':
		s.c = min((s.c/8+1)*8, s.cols-1)
		return 1
	case 0x1b:
		return s.escape(b)
	}
	if b[0] < 0x20 || b[0] == 0x7f {
		return 1 // other controls (bell) do nothing
	}
	if !utf8.FullRune(b) {
		return 0
	}
	r, n := utf8.DecodeRune(b)
	s.put(r)
	return n
}

// put writes r at the cursor, or adds it to the cluster written last.
func (s *Screen) put(r rune) {
	if s.lastR >= 0 {
		last := &s.grid[s.lastR][s.lastC]
		if joined := last.s + string(r); uniseg.GraphemeClusterCount(joined) == 1 {
			last.s = joined
			if !last.wide && uniseg.StringWidth(joined) == 2 && s.lastC+1 < s.cols && s.lastR == s.r && s.c == s.lastC+1 {
				// A variation selector made it wide: it takes the next
				// column too.
				s.clearAt(s.r, s.c)
				last.wide = true
				s.grid[s.r][s.c] = cell{}
				s.advance(1)
			}
			return
		}
	}
	w := max(uniseg.StringWidth(string(r)), 1) // a lone mark shows alone
	if s.wrapNext || s.c+w > s.cols {
		if !s.wrapNext {
			s.clearAt(s.r, s.c)
		}
		s.c, s.wrapNext = 0, false
		s.lineFeed()
	}
	s.clearAt(s.r, s.c)
	if w == 2 {
		s.clearAt(s.r, s.c+1)
		s.grid[s.r][s.c+1] = cell{}
	}
	s.grid[s.r][s.c] = cell{s: string(r), wide: w == 2}
	s.lastR, s.lastC = s.r, s.c
	s.advance(w)
}

// advance moves the cursor past w columns just written.
func (s *Screen) advance(w int) {
	if s.c+w >= s.cols {
		s.c, s.wrapNext = s.cols-1, true
	} else {
		s.c += w
	}
}

// clearAt blanks the wide character that column c of row r is half of, if
// any, before that column is written.
func (s *Screen) clearAt(r, c int) {
	row := s.grid[r]
	switch {
	case row[c].s == "" && c > 0:
		row[c-1] = blankCell
	case row[c].wide && c+1 < s.cols:
		row[c+1] = blankCell
	}
	row[c] = blankCell
}

// lineFeed moves the cursor down a row, scrolling at the bottom.
func (s *Screen) lineFeed() {
	s.wrapNext = false
	if s.r < s.rows-1 {
		s.r++
		return
	}
	s.scrolled = append(s.scrolled, rowText(s.grid[0]))
	copy(s.grid, s.grid[1:])
	s.grid[s.rows-1] = blank(s.cols)
}

// escape interprets an escape sequence at the start of b.
func (s *Screen) escape(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	s.lastR = -1
	if b[1] != '[' {
		return 2 // ESC x: ignored
	}
	i := 2
	for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == ';' || b[i] == '?') {
		i++
	}
	if i == len(b) {
		return 0
	}
	params, final := string(b[2:i]), b[i]
	if strings.HasPrefix(params, "?") {
		return i + 1 // private modes: ignored
	}
	var args []int
	for _, f := range strings.Split(params, ";") {
		n, _ := strconv.Atoi(f)
		args = append(args, n)
	}
	arg := func(k, def int) int {
		if k < len(args) && args[k] > 0 {
			return args[k]
		}
		return def
	}
	s.wrapNext = false
	switch final {
	case 'A':
		s.r = max(s.r-arg(0, 1), 0)
	case 'B':
		s.r = min(s.r+arg(0, 1), s.rows-1)
	case 'C':
		s.c = min(s.c+arg(0, 1), s.cols-1)
	case 'D':
		s.c = max(s.c-arg(0, 1), 0)
	case 'G':
		s.c = min(arg(0, 1)-1, s.cols-1)
	case 'H':
		s.r, s.c = min(arg(0, 1)-1, s.rows-1), min(arg(1, 1)-1, s.cols-1)
	case 'K':
		row := s.grid[s.r]
		switch arg(0, 0) {
		case 0:
			s.clearAt(s.r, s.c)
			copy(row[s.c:], blank(s.cols-s.c))
		case 1:
			copy(row[:s.c+1], blank(s.c+1))
		case 2:
			copy(row, blank(s.cols))
		}
	case 'J':
		switch arg(0, 0) {
		case 0:
			s.clearAt(s.r, s.c)
			copy(s.grid[s.r][s.c:], blank(s.cols-s.c))
			for r := s.r + 1; r < s.rows; r++ {
				s.grid[r] = blank(s.cols)
			}
		case 2, 3:
			for r := range s.grid {
				s.grid[r] = blank(s.cols)
			}
		}
	}
	return i + 1
}

// rowText returns the text of a row, without trailing spaces.
func rowText(r []cell) string {
	var b strings.Builder
	for _, c := range r {
		b.WriteString(c.s)
	}
	return strings.TrimRight(b.String(), " ")
}

// Rows returns the visible rows, without trailing spaces.
func (s *Screen) Rows() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rowsLocked()
}

// rowsLocked returns the visible rows. s.mu must be held.
func (s *Screen) rowsLocked() []string {
	out := make([]string, s.rows)
	for i, r := range s.grid {
		out[i] = rowText(r)
	}
	return out
}

// Transcript returns every row ever shown: those scrolled off the top, then
// the visible ones, with the blank rows at the bottom left out.
func (s *Screen) Transcript() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transcriptLocked()
}

// transcriptLocked is Transcript with s.mu held.
func (s *Screen) transcriptLocked() []string {
	all := append(append([]string(nil), s.scrolled...), s.rowsLocked()...)
	for len(all) > 0 && all[len(all)-1] == "" {
		all = all[:len(all)-1]
	}
	return all
}

// Cursor returns the cursor's row and column (from 0).
func (s *Screen) Cursor() (row, col int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r, s.c
}

// CursorRow returns the text of the row the cursor is on.
func (s *Screen) CursorRow() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rowText(s.grid[s.r])
}

// Raw returns every byte written so far.
func (s *Screen) Raw() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.raw...)
}

// String renders the screen for failure messages: the transcript with the
// cursor's row marked.
func (s *Screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for i, l := range s.scrolled {
		b.WriteString(strconv.Itoa(i-len(s.scrolled)) + "\t|" + l + "\n")
	}
	for i, l := range s.rowsLocked() {
		mark := " "
		if i == s.r {
			mark = ">"
		}
		b.WriteString(mark + strconv.Itoa(i) + "\t|" + l + "\n")
	}
	return b.String()
}

// View is what a Wait condition sees: the screen's state at one moment.
type View struct {
	Rows       []string // the visible rows
	Transcript []string // scrolled-off rows, then visible ones
	CursorRow  string   // the text of the cursor's row
	Row, Col   int      // the cursor
	Raw        []byte   // every byte written
}

// Wait waits until cond holds for the screen, or d passes. It reports
// whether cond held, and the last view it saw.
func (s *Screen) Wait(d time.Duration, cond func(v View) bool) (View, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		s.mu.Lock()
		v := View{
			Rows:       s.rowsLocked(),
			Transcript: s.transcriptLocked(),
			CursorRow:  rowText(s.grid[s.r]),
			Row:        s.r,
			Col:        s.c,
			Raw:        s.raw,
		}
		ch := s.changed
		s.mu.Unlock()
		if cond(v) {
			return v, true
		}
		select {
		case <-ch:
		case <-timer.C:
			return v, false
		}
	}
}

// Await is Wait for a test: it returns the view for which cond holds, or
// fails t after d, showing the screen; what names the wait in the failure.
func (s *Screen) Await(t testing.TB, d time.Duration, what string, cond func(v View) bool) View {
	t.Helper()
	v, ok := s.Wait(d, cond)
	if !ok {
		t.Fatalf("timed out after %v waiting for %s; screen:\n%s", d, what, s)
	}
	return v
}

// Contains reports whether some row of v's transcript equals line.
func (v View) Contains(line string) bool {
	for _, l := range v.Transcript {
		if l == line {
			return true
		}
	}
	return false
}

// ContainsText reports whether some row of v's transcript contains sub.
func (v View) ContainsText(sub string) bool {
	for _, l := range v.Transcript {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
