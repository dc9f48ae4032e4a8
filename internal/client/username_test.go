package client

import (
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

func TestUsernameProblem(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"", "is empty"},
		{".", "is . or .."},
		{"..", "is . or .."},
		{"a\xffb", "is not valid UTF-8"},
		{"../x", `contains / or \`},
		{`a\b`, `contains / or \`},
		{"a b", "contains whitespace"},
		{"a\tb", "contains whitespace"},
		{"a\u2028b", "contains whitespace"},
		{"a\x00b", "contains a control character"},
		{"a\u0080b", "contains a control character"},
		{"a\u200db", "contains a format character"},
		{"a\u202eb", "contains a format character"},
		{strings.Repeat("n", 33), "is longer than 32 characters"},
		{strings.Repeat("😀", 33), "is longer than 32 characters"},
	} {
		if protocol.ValidUsername(c.name) == nil {
			t.Errorf("%q: protocol.ValidUsername accepts it; the table is wrong", c.name)
		}
		if got := usernameProblem(c.name); got != c.want {
			t.Errorf("usernameProblem(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

// Every name the protocol refuses gets a reason more precise than the
// fallback: each rune from U+0000 to U+FFFF in a name, and names of every
// length around the limit.
func TestUsernameProblemExplainsEveryRefusal(t *testing.T) {
	var names []string
	for r := rune(0); r <= 0xffff; r++ {
		names = append(names, "a"+string(r)+"b")
	}
	for n := 30; n <= 34; n++ {
		names = append(names, strings.Repeat("é", n))
	}
	for _, name := range names {
		if protocol.ValidUsername(name) != nil && usernameProblem(name) == "breaks the username rule" {
			t.Errorf("%q is refused without a precise reason", name)
		}
	}
}
