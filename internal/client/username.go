package client

import (
	"unicode"
	"unicode/utf8"

	"github.com/gochat/chat/internal/protocol"
)

// usernameProblem says which part of the username rule (PROTOCOL.md
// section 3) name breaks, for a name protocol.ValidUsername refuses.
func usernameProblem(name string) string {
	if p := nameProblem(name); p != "" {
		return p
	}
	if utf8.RuneCountInString(name) > protocol.MaxUsernameRunes {
		return "is longer than 32 characters"
	}
	return "breaks the username rule"
}

// nameProblem says which of the rules that usernames and filenames share
// name breaks, or returns "" if it breaks none of them.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case name == "." || name == "..":
		return "is . or .."
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '\\':
			return `contains / or \`
		case unicode.IsSpace(r):
			return "contains whitespace"
		case unicode.Is(unicode.Cc, r):
			return "contains a control character"
		case unicode.Is(unicode.Cf, r):
			return "contains a format character"
		}
	}
	return ""
}
