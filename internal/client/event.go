package client

import "strings"

// EventKind says what a line the session prints is.
type EventKind uint8

// The lines the session prints. Those up to EventHelp go to stdout (the
// lines of PROTOCOL.md section 5 and the help), the others to stderr.
const (
	EventMessage      EventKind = iota // msg: <Sender>: <Text>
	EventFile                          // file: <Sender>: <Text>, a file saved
	EventList                          // list: <Names...>
	EventDisconnected                  // disconnected: <Text>, the session's last line
	EventQuitting                      // quitting, the session's last line
	EventInputError                    // incorrect user input format
	EventHelp                          // HelpText, several lines
	EventSent                          // a file sent, and to whom (Text)
	EventPresence                      // a user joined or left, or such notices pause or resume (Text)
	EventDiagnostic                    // anything else on stderr: a local error, a note (Text)
)

// Event is one line the session prints, with its parts: a front end given
// Hooks.Print shows it from them rather than recognising the line by its
// text, which a message, a file name or a path typed could imitate (issue
// 24 item 3).
type Event struct {
	Kind EventKind
	// Sender is who sent an EventMessage or an EventFile.
	Sender string
	// Text is an EventMessage's text, an EventFile's file name, what
	// follows "disconnected: " in an EventDisconnected, and a stderr
	// line whole (it starts with "client: ").
	Text string
	// Names are the users of an EventList, sorted.
	Names []string
}

// Stderr reports whether e's line goes to stderr.
func (e Event) Stderr() bool { return e.Kind > EventHelp }

// String returns e's line as printed, without its newline.
func (e Event) String() string { return string(e.appendLine(nil)) }

// appendLine appends e's line, without its newline, to b.
func (e Event) appendLine(b []byte) []byte {
	switch e.Kind {
	case EventMessage:
		return append(append(append(append(b, "msg: "...), e.Sender...), ": "...), e.Text...)
	case EventFile:
		return append(append(append(append(b, "file: "...), e.Sender...), ": "...), e.Text...)
	case EventList:
		return append(append(b, "list: "...), strings.Join(e.Names, " ")...)
	case EventDisconnected:
		return append(append(b, "disconnected: "...), e.Text...)
	case EventQuitting:
		return append(b, "quitting"...)
	case EventInputError:
		return append(b, ErrInput.Error()...)
	case EventHelp:
		return append(b, HelpText...)
	}
	return append(b, e.Text...)
}
