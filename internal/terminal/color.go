package terminal

import (
	"hash/fnv"
	"strings"

	"github.com/gochat/chat/internal/client"
)

// SGR attributes used by the front end.
const (
	sgrBold   = "1"
	sgrDim    = "2"
	sgrRed    = "31"
	sgrGreen  = "32"
	sgrYellow = "33"
	sgrCyan   = "36"
)

// nickColors are the colors a username may get, picked by a hash of the
// name so that one person always has the same color.
var nickColors = []string{"32", "33", "34", "35", "36", "92", "93", "94", "95", "96"}

// palette colors text, or leaves it plain when colors are off. Coloring
// only ever adds escape sequences: stripping them gives back the text.
type palette struct {
	on bool
}

// paint wraps s in the SGR attributes attrs.
func (p palette) paint(s string, attrs ...string) string {
	if !p.on || s == "" || len(attrs) == 0 {
		return s
	}
	return "\x1b[" + strings.Join(attrs, ";") + "m" + s + "\x1b[0m"
}

// nick colors a username.
func (p palette) nick(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return p.paint(name, sgrBold, nickColors[h.Sum32()%uint32(len(nickColors))])
}

// prompt returns the input prompt for user.
func (p palette) prompt(user string) string {
	return p.nick(user) + "> "
}

// stdoutLine colors one line the client prints on stdout (PROTOCOL.md
// section 5), keeping its text.
func (p palette) stdoutLine(line string) string {
	if !p.on {
		return line
	}
	switch {
	case strings.HasPrefix(line, "msg: "), strings.HasPrefix(line, "file: "):
		// "msg: <sender>: <text>" and "file: <sender>: <filename>": a
		// username holds no space, so the first ": " ends it.
		tag, rest, _ := strings.Cut(line, " ")
		sender, body, ok := strings.Cut(rest, ": ")
		if !ok {
			return line
		}
		if tag == "file:" {
			body = p.paint(body, sgrBold)
		}
		return p.paint(tag, sgrDim) + " " + p.nick(sender) + ": " + body
	case strings.HasPrefix(line, "list:"):
		names := strings.Split(strings.TrimPrefix(line, "list:"), " ")
		for i, n := range names {
			if n != "" {
				names[i] = p.nick(n)
			}
		}
		return p.paint("list:", sgrDim) + strings.Join(names, " ")
	case strings.HasPrefix(line, "disconnected: "):
		return p.paint(line, sgrBold, sgrRed)
	case line == "quitting":
		return p.paint(line, sgrDim)
	case line == client.ErrInput.Error():
		return p.paint(line, sgrYellow)
	}
	return line
}

// helpLine colors one line of client.HelpText.
func (p palette) helpLine(line string) string {
	trimmed := strings.TrimLeft(line, " ")
	indent := line[:len(line)-len(trimmed)]
	switch {
	case indent == "":
		return p.paint(line, sgrBold)
	case strings.HasPrefix(trimmed, "e.g. "):
		return indent + p.paint("e.g.", sgrDim) + " " + p.paint(strings.TrimPrefix(trimmed, "e.g. "), sgrCyan)
	}
	word, rest, _ := strings.Cut(trimmed, " ")
	if rest != "" {
		rest = " " + rest
	}
	return indent + p.paint(word, sgrBold) + rest
}

// stderrLine colors one line the client prints on stderr (each starts
// with "client: "): a file sent, a join or leave notice, or a diagnostic.
func (p palette) stderrLine(line string) string {
	switch {
	case strings.HasPrefix(line, "client: sent "):
		return p.paint(line, sgrGreen)
	case isPresence(line):
		return p.paint(line, sgrDim)
	}
	return p.paint(line, sgrYellow)
}

// isPresence reports whether a stderr line is a join or leave notice
// (or their pause or resumption).
func isPresence(line string) bool {
	rest, ok := strings.CutPrefix(line, "client: ")
	if !ok {
		return false
	}
	if strings.Contains(rest, "join and leave notices") {
		return true
	}
	name, event, ok := strings.Cut(rest, " ")
	return ok && name != "" && (event == "joined" || event == "left")
}
