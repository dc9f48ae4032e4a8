package terminal

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// commands are the command words of PROTOCOL.md section 5.
var commands = []string{"file", "help", "list", "msg", "quit"}

// maxListed is the most candidates listed at once.
const maxListed = 60

// completer completes the word before the cursor on Tab: a command word
// first; then, after msg and file, usernames (those online at join, and
// from every list received, every sender seen and every join notice, less
// those who left since); then, for file, a path; and usernames again in a
// message's text.
type completer struct {
	self  string // the user's own name, always offered
	mu    sync.Mutex
	names map[string]bool // guarded by mu

	// readDir lists a directory (os.ReadDir; replaced in tests).
	readDir func(dir string) ([]os.DirEntry, error)
	// isDir reports whether path names a directory (following links).
	isDir func(path string) bool

	// listedFor is the line and cursor whose candidates were last listed,
	// so that pressing Tab again does not list them again. Only the
	// editor's goroutine uses it.
	listedFor string
}

// newCompleter returns a completer that knows the username self.
func newCompleter(self string) *completer {
	return &completer{
		self:    self,
		names:   map[string]bool{self: true},
		readDir: os.ReadDir,
		isDir: func(path string) bool {
			st, err := os.Stat(path)
			return err == nil && st.IsDir()
		},
	}
}

// addNames records usernames seen (client.Hooks.Users).
func (c *completer) addNames(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		c.names[n] = true
	}
}

// dropName forgets a user who left (client.Hooks.Left): Tab no longer
// offers a name that would only earn a not-online notice. The user's own
// name stays.
func (c *completer) dropName(name string) {
	if name == c.self {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.names, name)
}

// sortedNames returns the usernames known, sorted.
func (c *completer) sortedNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n := range c.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// completion is what Tab does to a line.
type completion struct {
	line string // the new line
	pos  int    // the new cursor, a byte offset into line
	// list holds the candidates to show when none could be inserted.
	list []string
}

// complete completes the word that ends at byte offset pos of line. ok is
// false when there is nothing to complete there.
func (c *completer) complete(line string, pos int) (res completion, ok bool) {
	before, after := line[:pos], line[pos:]
	start := strings.LastIndexAny(before, " \t") + 1 // of the word being completed
	fields := strings.FieldsFunc(before[:start], isBlank)
	word := before[start:]

	var cands []string
	suffix := " " // added after a single, complete candidate
	switch {
	case len(fields) == 0:
		cands = prefixed(commands, word)
		if len(cands) == 1 && cands[0] != "msg" && cands[0] != "file" {
			suffix = ""
		}
	case fields[0] != "msg" && fields[0] != "file":
		return completion{}, false
	case len(fields) == 1:
		return completion{}, false // the count
	default:
		n, err := strconv.Atoi(fields[1])
		if err != nil || n < 1 {
			n = len(fields) // not a count yet: take every field as a name
		}
		switch {
		case len(fields) < 2+n:
			cands = prefixed(c.sortedNames(), word)
		case fields[0] == "msg":
			cands = prefixed(c.sortedNames(), word)
		default:
			// The path is the rest of the line after the names, spaces
			// and all.
			start = fieldStart(before, 2+n)
			word = before[start:]
			cands = c.paths(word)
			suffix = ""
		}
	}
	if len(cands) == 0 {
		return completion{}, false
	}
	insert := cands[0]
	if len(cands) == 1 {
		if !strings.HasSuffix(insert, "/") {
			insert += suffix
		}
	} else {
		insert = commonPrefix(cands)
	}
	if insert != word {
		c.listedFor = ""
		newLine := before[:start] + insert + after
		return completion{line: newLine, pos: start + len(insert)}, true
	}
	// Nothing to insert: list the candidates, once per line and cursor.
	key := line + "\x00" + strconv.Itoa(pos)
	if len(cands) < 2 || c.listedFor == key {
		return completion{}, false
	}
	c.listedFor = key
	return completion{line: line, pos: pos, list: cands}, true
}

// paths returns the entries that complete the path prefix p, each as the
// whole path, directories ending in a slash. Hidden entries are left out
// unless p's last element starts with a dot.
func (c *completer) paths(p string) []string {
	dir, base := "", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, base = p[:i+1], p[i+1:]
	}
	listDir := dir
	if listDir == "" {
		listDir = "."
	}
	ents, err := c.readDir(listDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, base) || strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		full := dir + name
		if e.IsDir() || e.Type()&os.ModeSymlink != 0 && c.isDir(filepath.Join(listDir, name)) {
			full += "/"
		}
		out = append(out, full)
	}
	slices.Sort(out)
	return out
}

// fieldStart returns the byte offset in s of field number i (from 0),
// fields being separated by runs of spaces and tabs; len(s) if s has no
// such field yet.
func fieldStart(s string, i int) int {
	k := -1
	for j := 0; j < len(s); j++ {
		if isBlank(rune(s[j])) {
			continue
		}
		if j == 0 || isBlank(rune(s[j-1])) {
			k++
			if k == i {
				return j
			}
		}
	}
	return len(s)
}

// isBlank reports whether r separates fields: a space or a tab.
func isBlank(r rune) bool { return r == ' ' || r == '\t' }

// prefixed returns the words that start with prefix.
func prefixed(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	return out
}

// commonPrefix returns the longest prefix, of whole runes, that all of ss
// share.
func commonPrefix(ss []string) string {
	p := ss[0]
	for _, s := range ss[1:] {
		i := 0
		for i < len(p) && i < len(s) && p[i] == s[i] {
			i++
		}
		p = p[:i]
	}
	for !utf8.ValidString(p) {
		p = p[:len(p)-1]
	}
	return p
}

// listing formats candidates for display, at most maxListed of them.
func listing(cands []string) string {
	shown := cands
	more := ""
	if len(shown) > maxListed {
		shown = shown[:maxListed]
		more = "  (+" + strconv.Itoa(len(cands)-maxListed) + " more)"
	}
	return strings.Join(shown, "  ") + more
}
