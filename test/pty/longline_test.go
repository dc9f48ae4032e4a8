package ptytest

import (
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal/termtest"
)

// A pasted line is taken whole, up to the contract's 65,536 bytes of text
// (x/term's editor used to drop every key past 4,096 characters without a
// word), and sent as it was pasted.
func TestLongPastedLineSentWhole(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		text string
	}{
		{"6000 characters", strings.Repeat("0123456789", 600)},
		{"65536 bytes of wide characters", strings.Repeat("日本語", 65536/9) + strings.Repeat("x", 65536%9)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, alice, bob := startAlice(t, env(term, ""))
			alice.typeKeys("msg 1 bob " + c.text + termtest.Enter)
			bob.Expect(protocol.ForwardMessage, "1 alice "+c.text)
			alice.waitInput("alice", "")
			quit(t, srv, alice)
		})
	}
}
