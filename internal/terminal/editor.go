package terminal

import (
	"slices"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// editor holds the line being typed and the cursor, and edits them by
// grapheme cluster: what a person sees as one character (a letter and its
// combining marks, an East Asian character, an emoji with its modifiers
// and ZWJ sequence, a flag) is moved over and deleted whole. It draws
// nothing; the screen shows it. Words are runs of characters other than
// spaces and tabs, as in a shell.
//
// It is guarded by the screen's mu: the editor's goroutine changes it, the
// screen draws it whenever anything is printed.
type editor struct {
	buf   []byte // the line, valid UTF-8 without control characters
	pos   int    // the cursor: a byte offset into buf
	limit int    // the most bytes buf may hold

	// histIdx is the history line shown (0 the latest), -1 for the line
	// being typed, which pending keeps while older ones are shown.
	histIdx int
	pending string
}

// newEditor returns an empty editor for lines of at most limit bytes.
func newEditor(limit int) *editor {
	return &editor{limit: limit, histIdx: -1}
}

// String returns the line.
func (e *editor) String() string { return string(e.buf) }

// set replaces the line and puts the cursor at byte offset pos.
func (e *editor) set(line string, pos int) {
	e.buf = append(e.buf[:0], line...)
	e.pos = min(max(pos, 0), len(e.buf))
}

// reset empties the line for the next one.
func (e *editor) reset() {
	e.set("", 0)
	e.histIdx, e.pending = -1, ""
}

// insert inserts text at the cursor. If the line would grow past its
// limit, only what fits (whole characters) is inserted, and cut is true.
func (e *editor) insert(text string) (cut bool) {
	if room := e.limit - len(e.buf); len(text) > room {
		for room > 0 && !utf8.RuneStart(text[room]) {
			room--
		}
		text, cut = text[:room], true
	}
	e.buf = slices.Insert(e.buf, e.pos, []byte(text)...)
	e.pos += len(text)
	return cut
}

// remove deletes the bytes from i to j and leaves the cursor at i.
func (e *editor) remove(i, j int) {
	e.buf = slices.Delete(e.buf, i, j)
	e.pos = i
}

// clusterAfter returns the cluster boundary after byte offset i (len(buf)
// at the end).
func (e *editor) clusterAfter(i int) int {
	end := len(e.buf)
	eachCluster(e.buf, func(start, stop, _ int) bool {
		if stop > i {
			end = stop
			return false
		}
		return true
	})
	return end
}

// clusterBefore returns the cluster boundary before byte offset i (0 at
// the start).
func (e *editor) clusterBefore(i int) int {
	start := 0
	eachCluster(e.buf, func(s, _, _ int) bool {
		if s >= i {
			return false
		}
		start = s
		return true
	})
	return start
}

// blankAt reports whether the cluster starting at byte offset i is a
// space or a tab.
func (e *editor) blankAt(i int) bool { return e.buf[i] == ' ' || e.buf[i] == '\t' }

// wordBefore returns where the word before the cursor starts: blanks are
// skipped, then the word.
func (e *editor) wordBefore() int {
	var starts []int // of the clusters before the cursor
	eachCluster(e.buf, func(start, _, _ int) bool {
		if start >= e.pos {
			return false
		}
		starts = append(starts, start)
		return true
	})
	i := len(starts)
	for i > 0 && e.blankAt(starts[i-1]) {
		i--
	}
	for i > 0 && !e.blankAt(starts[i-1]) {
		i--
	}
	if i == len(starts) {
		return e.pos
	}
	return starts[i]
}

// wordAfter returns where the word after the cursor ends: blanks are
// skipped, then the word.
func (e *editor) wordAfter() int {
	end := len(e.buf)
	inWord := false
	eachCluster(e.buf, func(start, _, _ int) bool {
		if start < e.pos {
			return true
		}
		blank := e.blankAt(start)
		if inWord && blank {
			end = start
			return false
		}
		inWord = inWord || !blank
		return true
	})
	return end
}

// edit applies an editing key and reports whether it was one.
func (e *editor) edit(k keyKind) bool {
	switch k {
	case keyLeft:
		e.pos = e.clusterBefore(e.pos)
	case keyRight:
		e.pos = e.clusterAfter(e.pos)
	case keyHome:
		e.pos = 0
	case keyEnd:
		e.pos = len(e.buf)
	case keyWordLeft:
		e.pos = e.wordBefore()
	case keyWordRight:
		e.pos = e.wordAfter()
	case keyBackspace:
		e.remove(e.clusterBefore(e.pos), e.pos)
	case keyDelete, keyEOF:
		e.remove(e.pos, e.clusterAfter(e.pos))
	case keyKillWordBack:
		e.remove(e.wordBefore(), e.pos)
	case keyKillWordFwd:
		e.remove(e.pos, e.wordAfter())
	case keyKillStart:
		e.remove(0, e.pos)
	case keyKillEnd:
		e.remove(e.pos, len(e.buf))
	case keyTranspose:
		e.transpose()
	default:
		return false
	}
	return true
}

// transpose swaps the characters before and at the cursor and moves past
// them; at the end of the line it swaps the last two.
func (e *editor) transpose() {
	mid := e.pos
	if mid == len(e.buf) {
		mid = e.clusterBefore(mid)
	}
	if mid == 0 {
		return
	}
	start, end := e.clusterBefore(mid), e.clusterAfter(mid)
	swapped := append(slices.Clone(e.buf[mid:end]), e.buf[start:mid]...)
	copy(e.buf[start:end], swapped)
	e.pos = end
}

// historyUp shows the line of h before the one shown.
func (e *editor) historyUp(h *history) {
	if e.histIdx+1 >= h.Len() {
		return
	}
	if e.histIdx == -1 {
		e.pending = e.String()
	}
	e.histIdx++
	line := h.At(e.histIdx)
	e.set(line, len(line))
}

// historyDown shows the line of h after the one shown, or the line that
// was being typed.
func (e *editor) historyDown(h *history) {
	switch e.histIdx {
	case -1:
		return
	case 0:
		e.histIdx = -1
		e.set(e.pending, len(e.pending))
	default:
		e.histIdx--
		line := h.At(e.histIdx)
		e.set(line, len(line))
	}
}

// eachCluster calls fn with the byte offsets of each grapheme cluster of
// b and the columns it may take on a screen (see cellWidth), until fn
// returns false.
func eachCluster(b []byte, fn func(start, end, width int) bool) {
	state := -1
	for i := 0; i < len(b); {
		// A printable ASCII byte followed by another (or by nothing) is a
		// cluster of its own, one column wide.
		if b[i] < utf8.RuneSelf && (i+1 == len(b) || b[i+1] < utf8.RuneSelf) {
			if !fn(i, i+1, 1) {
				return
			}
			i, state = i+1, -1
			continue
		}
		var cluster []byte
		var w int
		cluster, _, w, state = uniseg.FirstGraphemeCluster(b[i:], state)
		if !fn(i, i+len(cluster), cellWidth(cluster, w)) {
			return
		}
		i += len(cluster)
	}
}

// cellWidth returns the columns a grapheme cluster of width w (as uniseg
// measures it) may take: the larger of w and the sum of its characters'
// own widths, since a terminal that does not join clusters (many, for
// emoji ZWJ sequences) draws each character apart. Reserving the larger
// keeps the input row from ever wrapping; the cursor itself is placed by
// the terminal (see screen.drawInput), so it is right either way.
func cellWidth(cluster []byte, w int) int {
	if len(cluster) == 1 {
		return w
	}
	sum := 0
	for len(cluster) > 0 {
		r, n := utf8.DecodeRune(cluster)
		sum += uniseg.StringWidth(string(r))
		cluster = cluster[n:]
	}
	return max(w, sum)
}

// textWidth returns the columns s may take (see cellWidth).
func textWidth(s string) int {
	w := 0
	eachCluster([]byte(s), func(_, _, cw int) bool {
		w += cw
		return true
	})
	return w
}
