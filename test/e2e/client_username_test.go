package e2e

import (
	"strings"
	"testing"
	"time"
)

// The client checks its own username (PROTOCOL.md section 3) before it
// connects: a name the protocol forbids would otherwise reach the save
// path of received files (`-u ../x` with a server that takes it saves
// outside the download folder). It prints what a server's refusal prints,
// says on stderr which rule the name breaks, and never connects.
func TestClientRefusesInvalidOwnUsername(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, why string }{
		{"../x", `contains / or \`},
		{"x/y", `contains / or \`},
		{`a\b`, `contains / or \`},
		{"a b", "contains whitespace"},
		{"a\u00a0b", "contains whitespace"},
		{strings.Repeat("n", 33), "is longer than 32 characters"},
		{"..", "is . or .."},
		{"", "is empty"},
		{"a\x01b", "contains a control character"},
		{"a\u200bb", "contains a format character"},
	} {
		t.Run(quote(c.name), func(t *testing.T) {
			t.Parallel()
			fs := newFakeServer(t)
			cl := startClient(t, fs.port, c.name)
			// As for a refusal, piped input is read to its end first.
			cl.expectDisconnectedExit1(t, "disconnected: username not available")
			cl.errs.skipTo(t, "client: invalid username "+quote(c.name)+": "+c.why, timeout)
			// The client never connected.
			fs.ln.SetDeadline(time.Now())
			if conn, err := fs.ln.AcceptTCP(); err == nil {
				conn.Close()
				t.Fatal("the client connected with an invalid username")
			}
			cl.expectHomeFiles(t)
		})
	}
}
