package client

import (
	"fmt"
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

// slashLike maps the characters that look like / or \ to the one they
// look like: Unicode's confusables (confusables.txt, UTS #39) for SOLIDUS
// and REVERSE SOLIDUS that are not letters, their fullwidth forms, and
// the combining overlays that draw a slash across the character before.
// A file name holding one passes the protocol's rule, yet shows as a
// path: "∕..∕..∕etc∕passwd" was saved as "bob_∕..∕..∕etc∕passwd" (issue 23
// item 12). Letters of a script that look alike (Katakana ノ, CJK 丿 and
// 丶, Coptic Ⳇ) are left alone: they are parts of words.
var slashLike = map[rune]rune{
	'\u0337':     '/',  // COMBINING SHORT SOLIDUS OVERLAY
	'\u0338':     '/',  // COMBINING LONG SOLIDUS OVERLAY
	'\u1735':     '/',  // PHILIPPINE SINGLE PUNCTUATION
	'\u2041':     '/',  // CARET INSERTION POINT
	'\u2044':     '/',  // FRACTION SLASH
	'\u2215':     '/',  // DIVISION SLASH
	'\u2571':     '/',  // BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT
	'\u27cb':     '/',  // MATHEMATICAL RISING DIAGONAL
	'\u29f8':     '/',  // BIG SOLIDUS
	'\u2f03':     '/',  // KANGXI RADICAL SLASH
	'\u3033':     '/',  // VERTICAL KANA REPEAT MARK UPPER HALF
	'\u31d3':     '/',  // CJK STROKE SP
	'\uff0f':     '/',  // FULLWIDTH SOLIDUS
	'\U0001d23a': '/',  // GREEK INSTRUMENTAL NOTATION SYMBOL-47
	'\u2216':     '\\', // SET MINUS
	'\u2572':     '\\', // BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT
	'\u27cd':     '\\', // MATHEMATICAL FALLING DIAGONAL
	'\u29f5':     '\\', // REVERSE SOLIDUS OPERATOR
	'\u29f9':     '\\', // BIG REVERSE SOLIDUS
	'\u2f02':     '\\', // KANGXI RADICAL DOT
	'\u31d4':     '\\', // CJK STROKE D
	'\ufe68':     '\\', // SMALL REVERSE SOLIDUS
	'\uff3c':     '\\', // FULLWIDTH REVERSE SOLIDUS
	'\U0001d20f': '\\', // GREEK VOCAL NOTATION SYMBOL-16
	'\U0001d23b': '\\', // GREEK INSTRUMENTAL NOTATION SYMBOL-48
}

// slashProblem says how a file name that the protocol's rule admits looks
// like a path (see slashLike), or returns "" if it does not.
func slashProblem(name string) string {
	for _, r := range name {
		if like, ok := slashLike[r]; ok {
			return fmt.Sprintf("contains %q (U+%04X), which looks like %c", r, r, like)
		}
	}
	return ""
}
