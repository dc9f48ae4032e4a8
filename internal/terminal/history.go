package terminal

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode"
)

// historySize is the most lines the history keeps.
const historySize = 1000

// history holds the lines entered, for the up and down arrows and Ctrl-R.
// Blank lines and a repeat of the latest line are not kept. With a file,
// it is kept across sessions: loaded when the front end opens, each line
// appended as it is entered, and the file cut back to the last
// historySize lines when the front end closes, if it has grown to twice
// that.
type history struct {
	mu     sync.Mutex
	lines  []string // oldest first; guarded by mu
	file   string   // where it is kept, or ""
	inFile int      // lines in the file; guarded by mu
}

// HistoryFile returns where the history is kept for a user whose
// environment getenv reads: $XDG_STATE_HOME/gochat/history, or
// ~/.local/state/gochat/history; "" if neither can be told.
func HistoryFile(getenv func(string) string) string {
	if dir := getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "gochat", "history")
	}
	if home := getenv("HOME"); filepath.IsAbs(home) {
		return filepath.Join(home, ".local", "state", "gochat", "history")
	}
	return ""
}

// loadHistory returns the history kept in file, which need not exist.
func loadHistory(file string) *history {
	h := &history{file: file}
	f, err := os.Open(file)
	if err != nil {
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		h.inFile++
		h.keep(sc.Text())
	}
	return h
}

// Add adds line as the latest, and appends it to the file.
func (h *history) Add(line string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.keep(line) && h.file != "" {
		h.appendFile(line)
	}
}

// keep adds line as the latest unless it is blank or repeats the latest,
// and reports whether it did. mu must be held (or h not yet shared).
func (h *history) keep(line string) bool {
	if strings.TrimFunc(line, unicode.IsSpace) == "" || strings.ContainsAny(line, "\r\n") {
		return false
	}
	if n := len(h.lines); n > 0 && h.lines[n-1] == line {
		return false
	}
	if len(h.lines) == historySize {
		h.lines = append(h.lines[:0], h.lines[1:]...)
	}
	h.lines = append(h.lines, line)
	return true
}

// appendFile appends line to the file, making the file (readable by its
// owner only) and its folder if need be. Failures are not reported: the
// history is a convenience. mu must be held.
func (h *history) appendFile(line string) {
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return
	}
	f, err := os.OpenFile(h.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err == nil {
		h.inFile++
	}
}

// compact cuts the file back to the lines kept, if it holds twice as many.
// The file is replaced whole, so a reader never sees half of it.
func (h *history) compact() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.file == "" || h.inFile < 2*historySize {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.file), ".history-*")
	if err != nil {
		return
	}
	w := bufio.NewWriter(tmp)
	for _, l := range h.lines {
		w.WriteString(l + "\n")
	}
	err = w.Flush()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), h.file)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return
	}
	h.inFile = len(h.lines)
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
