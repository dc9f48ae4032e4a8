package ptytest

import (
	"testing"

	"github.com/gochat/chat/internal/terminal/termtest"
)

// On a terminal, an invalid own username ends the client at once, as a
// refusal does, with the reason above and the terminal given back. (That
// it never connects is checked in test/e2e.)
func TestInvalidUsernameOnTerminal(t *testing.T) {
	t.Parallel()
	fake := newFakeServer(t)
	alice := startPTY(t, env(term, ""), args(fake.port, "a/b")...)
	expectExit(t, alice, 1)
	alice.waitScreen("the reason, then the refusal", func(v termtest.View) bool {
		return v.Contains(`client: invalid username "a/b": contains / or \`) &&
			endsWith(v, "disconnected: username not available")
	})
	alice.expectTerminalRestored()
}
