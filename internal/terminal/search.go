package terminal

import "unicode/utf8"

// search is the state of a reverse incremental history search (Ctrl-R),
// as in bash: typing extends the query and shows the latest line that
// holds it, Ctrl-R again an older one, Backspace shortens the query. Enter
// takes the line found; Esc keeps it for editing, and so does any editing
// key, which then acts on it; Ctrl-G and Ctrl-C give up, putting back the
// line as it was.
type search struct {
	active bool
	query  string
	idx    int  // the history index of the match shown, -1 for none
	failed bool // the query matches nothing
	// saved is the line and cursor before the search.
	saved    string
	savedPos int
}

// prompt returns the prompt shown during the search.
func (s *search) prompt(p palette) promptText {
	label := "(reverse-i-search)"
	if s.failed {
		label = "(failed reverse-i-search)"
	}
	rest := "`" + s.query + "': "
	return newPrompt(p.paint(label, sgrDim)+rest, label+rest)
}

// startSearch starts a search from the line being typed.
func (t *Terminal) startSearch() {
	t.search = search{active: true, idx: -1, saved: t.ed.String(), savedPos: t.ed.pos}
	t.scr.setPrompt(t.search.prompt(t.pal))
}

// searchKey handles a key during a search. It reports whether the key was
// the search's own; if not, the search has ended and the key is for the
// editor, acting on the line found.
func (t *Terminal) searchKey(k key) bool {
	s := &t.search
	switch k.kind {
	case keyText:
		s.query += k.text
		t.find(max(s.idx, 0))
	case keyBackspace:
		if s.query != "" {
			_, n := utf8.DecodeLastRuneInString(s.query)
			s.query = s.query[:len(s.query)-n]
			t.find(0)
		}
	case keySearch:
		if s.query != "" {
			t.find(s.idx + 1)
		}
	case keyCancel, keyInterrupt:
		t.endSearch()
		t.ed.set(s.saved, s.savedPos)
	case keyEsc:
		t.endSearch()
	case keyNone:
	default:
		t.endSearch()
		return false
	}
	return true
}

// find looks for the query from history index from on, older and older,
// and shows what it found.
func (t *Terminal) find(from int) {
	s := &t.search
	if idx, off, ok := t.hist.search(s.query, from); ok {
		s.idx, s.failed = idx, false
		t.ed.set(t.hist.At(idx), off)
	} else {
		s.failed = true
	}
	t.scr.setPrompt(s.prompt(t.pal))
}

// endSearch ends a search, if one is under way, keeping the editor's line.
func (t *Terminal) endSearch() {
	if t.search.active {
		t.search.active = false
		t.scr.setPrompt(t.prompt)
	}
}
