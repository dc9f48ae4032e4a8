package client

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// A line that matches no command prints the contract's line on stdout,
// and on stderr what was wrong with it (issue 23 item 6).
func TestInputHints(t *testing.T) {
	tests := []struct{ in, hint string }{
		{"msg 3 bob carol hi", "msg 3 takes 3 usernames, then a message: after bob carol hi there is none"},
		{"msg 3 bob carol", "msg 3 names 2 usernames, then needs a message"},
		{"msg 0 bob hi", "N must be at least 1"},
		{"msg 1025 bob hi", "N may be at most 1,024"},
		{"msg one bob hi", `N must be a number from 1 to 1,024, not "one"`},
		{"msg 01 bob hi", `N must be a number from 1 to 1,024, not "01"`},
		{"msg", "msg needs N, then N usernames, then a message (e.g. msg 1 bob ...)"},
		{"file 1 bob", "file 1 takes 1 username, then a file's path: after bob there is none"},
		{"msg 1 bob " + strings.Repeat("x", 70000), "a message may be at most 65,536 bytes; this one has 70,000"},
		{"msg 1 bob hi\x01", "a message cannot hold control characters"},
		{"msg 1 bob hi\xff", "a message must be valid UTF-8"},
		{"msg 1 a/b hi", `"a/b" is not a username: it contains / or \`},
		{"hello", `no command "hello"; type help for the commands`},
		{"list all", "list takes nothing after it"},
		{tooLongLine, "a line may be at most 1,048,576 bytes; no command is longer"},
	}
	for _, tc := range tests {
		_, err := ParseCommand(tc.in)
		var ie *InputError
		if !errors.Is(err, ErrInput) || !errors.As(err, &ie) || ie.Hint != tc.hint {
			t.Errorf("ParseCommand(%.40q) = %v, hint %q; want hint %q", tc.in, err, hintOf(ie), tc.hint)
		}
	}

	// Through a session: stdout keeps exactly the contract's line.
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.Disconnect)
	})
	s := startClient(t, addr)
	s.input(t, "msg 3 bob carol hi", "msg 0 bob hi", "msg 1 bob "+strings.Repeat("x", 70000), "cancel", "quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d", c)
	}
	if got, want := s.stdout.String(), strings.Repeat("incorrect user input format\n", 4)+"quitting\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	want := "client: msg 3 takes 3 usernames, then a message: after bob carol hi there is none\n" +
		"client: N must be at least 1\n" +
		"client: a message may be at most 65,536 bytes; this one has 70,000\n" +
		"client: no file is being sent to cancel\n"
	if got := s.stderr.String(); got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

func hintOf(ie *InputError) string {
	if ie == nil {
		return ""
	}
	return ie.Hint
}
