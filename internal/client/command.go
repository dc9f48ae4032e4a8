package client

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gochat/chat/internal/protocol"
)

// Kind is the kind of a user command.
type Kind uint8

// The user commands of PROTOCOL.md section 5.
const (
	None Kind = iota // an empty line
	Msg
	List
	File
	Help
	Quit
)

// Command is a parsed line of user input.
type Command struct {
	Kind  Kind
	Names []string // recipients of Msg and File
	Text  string   // the message of Msg
	Path  string   // the file of File
}

// ErrInput is returned for a line that matches no command format. The
// error ParseCommand returns is an *InputError that says why; it matches
// ErrInput with errors.Is.
var ErrInput = errors.New("incorrect user input format")

// InputError is ParseCommand's error: the line matches no command format,
// and Hint says why, for a person (issue 23 item 6: "msg 0 bob hi" and a
// 70,000-byte message printed only the contract's "incorrect user input
// format").
type InputError struct {
	Hint string
}

// Error returns the contract's line, whatever the hint.
func (e *InputError) Error() string { return ErrInput.Error() }

// Is makes an InputError match ErrInput.
func (e *InputError) Is(target error) bool { return target == ErrInput }

// inputErr returns an *InputError with the hint made of format and args.
func inputErr(format string, args ...any) error {
	return &InputError{Hint: fmt.Sprintf(format, args...)}
}

// ParseCommand parses one line of user input. Leading and trailing
// White_Space is ignored; fields are separated by runs of spaces or tabs; a
// message's text and a file's path are the rest of the line.
func ParseCommand(line string) (Command, error) {
	line = strings.TrimFunc(line, unicode.IsSpace)
	if line == "" {
		return Command{Kind: None}, nil
	}
	if line == tooLongLine {
		return Command{}, inputErr("a line may be at most %s bytes; no command is longer", commas(MaxLine))
	}
	word, rest := nextField(line)
	switch word {
	case "list", "help", "quit":
		if rest != "" {
			return Command{}, inputErr("%s takes nothing after it", word)
		}
		return Command{Kind: map[string]Kind{"list": List, "help": Help, "quit": Quit}[word]}, nil
	case "msg", "file":
	default:
		return Command{}, inputErr("no command %q; type help for the commands", clip(word))
	}
	what := "a message"
	if word == "file" {
		what = "a file's path"
	}
	field, rest := nextField(rest)
	if field == "" {
		return Command{}, inputErr("%s needs N, then N usernames, then %s (e.g. %s 1 bob ...)", word, what, word)
	}
	n, err := protocol.ParseCount([]byte(field), 1, protocol.MaxRecipients)
	switch {
	case err == nil:
	case field == "0":
		return Command{}, inputErr("N must be at least 1")
	case strings.Trim(field, "0123456789") == "" && field[0] != '0':
		return Command{}, inputErr("N may be at most %s", commas(protocol.MaxRecipients))
	default:
		return Command{}, inputErr("N must be a number from 1 to %s, not %q", commas(protocol.MaxRecipients), clip(field))
	}
	names := make([]string, 0, n)
	for range n {
		field, rest = nextField(rest)
		if field == "" {
			return Command{}, inputErr("%s %d names %s, then needs %s", word, n, usernames(len(names)), what)
		}
		if protocol.ValidUsername(field) != nil {
			return Command{}, inputErr("%q is not a username: it %s", clip(field), usernameProblem(field))
		}
		names = append(names, field)
	}
	if rest == "" {
		return Command{}, inputErr("%s %d takes %s, then %s: after %s there is none", word, n, usernames(n), what, clip(strings.Join(names, " ")))
	}
	if word == "file" {
		return Command{Kind: File, Names: names, Path: rest}, nil
	}
	if err := protocol.ValidText([]byte(rest)); err != nil {
		switch {
		case len(rest) > protocol.MaxTextBytes:
			return Command{}, inputErr("a message may be at most %s bytes; this one has %s", commas(protocol.MaxTextBytes), commas(len(rest)))
		case !utf8.ValidString(rest):
			return Command{}, inputErr("a message must be valid UTF-8")
		default:
			return Command{}, inputErr("a message cannot hold control characters")
		}
	}
	return Command{Kind: Msg, Names: names, Text: rest}, nil
}

// usernames says "1 username" or "N usernames".
func usernames(n int) string {
	if n == 1 {
		return "1 username"
	}
	return strconv.Itoa(n) + " usernames"
}

// clip shortens s for a hint: a pasted megabyte must not be echoed.
func clip(s string) string {
	const most = 40
	if len(s) <= most {
		return s
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// commas formats n with a comma between each group of three digits.
func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// nextField returns the text up to the first space or tab, and what follows
// the run of spaces and tabs after it.
func nextField(s string) (field, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}
