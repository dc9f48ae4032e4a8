package client

import (
	"errors"
	"strings"
	"unicode"

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

// ErrInput is returned for a line that matches no command format.
var ErrInput = errors.New("incorrect user input format")

// ParseCommand parses one line of user input. Leading and trailing
// White_Space is ignored; fields are separated by runs of spaces or tabs; a
// message's text and a file's path are the rest of the line.
func ParseCommand(line string) (Command, error) {
	line = strings.TrimFunc(line, unicode.IsSpace)
	if line == "" {
		return Command{Kind: None}, nil
	}
	word, rest := nextField(line)
	switch word {
	case "list", "help", "quit":
		if rest != "" {
			return Command{}, ErrInput
		}
		return Command{Kind: map[string]Kind{"list": List, "help": Help, "quit": Quit}[word]}, nil
	case "msg", "file":
	default:
		return Command{}, ErrInput
	}
	field, rest := nextField(rest)
	n, err := protocol.ParseCount([]byte(field), 1, protocol.MaxRecipients)
	if err != nil {
		return Command{}, ErrInput
	}
	names := make([]string, 0, n)
	for range n {
		field, rest = nextField(rest)
		if field == "" || protocol.ValidUsername(field) != nil {
			return Command{}, ErrInput
		}
		names = append(names, field)
	}
	if rest == "" {
		return Command{}, ErrInput
	}
	if word == "file" {
		return Command{Kind: File, Names: names, Path: rest}, nil
	}
	if protocol.ValidText([]byte(rest)) != nil {
		return Command{}, ErrInput
	}
	return Command{Kind: Msg, Names: names, Text: rest}, nil
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
