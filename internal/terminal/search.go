package terminal

import "unicode/utf8"

// Keys the front end handles itself (the line editor passes them on).
const (
	keyCtrlC  = 0x03
	keyCtrlG  = 0x07
	keyCtrlH  = 0x08
	keyTab    = '\t'
	keyCtrlR  = 0x12
	keyDelete = 0x7f
	// keySearchBack is what Backspace becomes while a search goes on, so
	// that it shortens the query instead of the line. It is a private-use
	// rune no keyboard sends.
	keySearchBack = '\uE000'
)

// search is the state of a reverse incremental history search (Ctrl-R).
// Only the editor's goroutine uses it.
type search struct {
	active bool
	query  string
	idx    int  // the history index of the match shown, -1 for none
	failed bool // the query matches nothing
	// saved is the line and cursor before the search, put back by Ctrl-G.
	saved    string
	savedPos int
	// line and pos are what the search last put in the editor: if the
	// editor's line differs, a key the editor handles itself ended it.
	line string
	pos  int
}

// prompt returns the prompt shown during the search.
func (s *search) prompt(p palette) string {
	label := "(reverse-i-search)"
	if s.failed {
		label = "(failed reverse-i-search)"
	}
	return p.paint(label, sgrDim) + "`" + s.query + "': "
}

// onKey is the editor's AutoCompleteCallback: Tab completes, Ctrl-R
// searches the history. It runs on the editor's goroutine, with the
// editor's lock released.
func (t *Terminal) onKey(line string, pos int, key rune) (newLine string, newPos int, ok bool) {
	s := &t.search
	if s.active && (line != s.line || pos != s.pos) {
		t.endSearch() // the editor moved or edited: keep its line
	}
	if s.active {
		switch key {
		case keyCtrlR:
			if s.query != "" {
				t.find(s.idx + 1)
			}
			return t.searchResult(line, pos)
		case keyCtrlG:
			t.endSearch()
			return s.saved, s.savedPos, true
		case keySearchBack:
			if s.query != "" {
				_, n := utf8.DecodeLastRuneInString(s.query)
				s.query = s.query[:len(s.query)-n]
				t.find(0)
			}
			return t.searchResult(line, pos)
		case keyTab:
			t.endSearch() // and complete the line found
		default:
			if key < 0x20 {
				t.endSearch()
				return "", 0, false
			}
			s.query += string(key)
			t.find(max(s.idx, 0))
			return t.searchResult(line, pos)
		}
	}
	switch key {
	case keySearchBack:
		return line, pos, true // a search ended under it: drop it
	case keyCtrlR:
		*s = search{active: true, idx: -1, saved: line, savedPos: pos, line: line, pos: pos}
		t.setPrompt(s.prompt(t.pal))
		return "", 0, false
	case keyTab:
		res, ok := t.comp.complete(line, pos)
		if !ok {
			return "", 0, false
		}
		if res.list != nil {
			t.scr.print(t.scr.tty, []byte(listing(res.list)), func(l string) string { return t.pal.paint(l, sgrDim) })
			return "", 0, false
		}
		return res.line, res.pos, true
	}
	return "", 0, false
}

// find looks for the query from history index from on, older and older,
// and shows what it found in the prompt.
func (t *Terminal) find(from int) {
	s := &t.search
	if idx, off, ok := t.hist.search(s.query, from); ok {
		s.idx, s.failed = idx, false
		s.line, s.pos = t.hist.At(idx), off
	} else {
		s.failed = true
	}
	t.setPrompt(s.prompt(t.pal))
}

// searchResult returns what the editor shows during the search: the match,
// or the line as it is when nothing matched yet.
func (t *Terminal) searchResult(line string, pos int) (string, int, bool) {
	s := &t.search
	if s.idx < 0 {
		s.line, s.pos = line, pos
	}
	return s.line, s.pos, true
}

// endSearch ends a search, keeping the editor's line.
func (t *Terminal) endSearch() {
	if t.search.active {
		t.search.active = false
		t.setPrompt(t.prompt)
	}
}
