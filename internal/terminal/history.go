package terminal

import (
	"strings"
	"sync"
	"unicode"
)

// historySize is the most lines the history keeps.
const historySize = 1000

// history holds the lines entered, for the up and down arrows and Ctrl-R.
// Blank lines and a repeat of the latest line are not kept.
type history struct {
	mu    sync.Mutex
	lines []string // oldest first; guarded by mu
}

// Add adds line as the latest.
func (h *history) Add(line string) {
	if strings.TrimFunc(line, unicode.IsSpace) == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.lines); n > 0 && h.lines[n-1] == line {
		return
	}
	if len(h.lines) == historySize {
		h.lines = append(h.lines[:0], h.lines[1:]...)
	}
	h.lines = append(h.lines, line)
}

// Len returns the number of lines kept.
func (h *history) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.lines)
}

// At returns line i, 0 being the latest.
func (h *history) At(i int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lines[len(h.lines)-1-i]
}

// search returns the index (as for At) of the latest line at index from
// or older that contains query, and the byte offset of the match in it.
func (h *history) search(query string, from int) (idx, off int, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := from; i >= 0 && i < len(h.lines); i++ {
		if k := strings.Index(h.lines[len(h.lines)-1-i], query); k >= 0 {
			return i, k, true
		}
	}
	return 0, 0, false
}
