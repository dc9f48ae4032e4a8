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

// line colors the line of ev, which goes to stdout (PROTOCOL.md section
// 5), keeping its text. It goes by what the line is and its parts, not by
// its text: a message whose text reads "incorrect user input format" is a
// message.
func (p palette) line(ev client.Event) string {
	if !p.on {
		return ev.String()
	}
	switch ev.Kind {
	case client.EventMessage:
		return p.paint("msg:", sgrDim) + " " + p.nick(ev.Sender) + ": " + ev.Text
	case client.EventFile:
		return p.paint("file:", sgrDim) + " " + p.nick(ev.Sender) + ": " + p.paint(ev.Text, sgrBold)
	case client.EventList:
		names := make([]string, len(ev.Names))
		for i, n := range ev.Names {
			names[i] = p.nick(n)
		}
		return p.paint("list:", sgrDim) + " " + strings.Join(names, " ")
	case client.EventDisconnected:
		return p.paint(ev.String(), sgrBold, sgrRed)
	case client.EventQuitting:
		return p.paint(ev.String(), sgrDim)
	case client.EventInputError:
		return p.paint(ev.String(), sgrYellow)
	}
	return ev.String()
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

// stderrColor returns the color of a line of kind k on stderr: a file
// sent is green, a join or leave notice dim, a diagnostic yellow.
func stderrColor(k client.EventKind) string {
	switch k {
	case client.EventSent:
		return sgrGreen
	case client.EventPresence:
		return sgrDim
	}
	return sgrYellow
}
