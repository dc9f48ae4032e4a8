package ptytest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rivo/uniseg"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal/termtest"
)

// waitCursor waits until the cursor's row is the prompt and input, with
// the cursor just after before (a prefix of input), counted in columns.
func (c *ptyClient) waitCursor(user, input, before string) termtest.View {
	c.t.Helper()
	row, col := user+"> "+input, uniseg.StringWidth(user+"> "+before)
	return c.waitScreen(fmt.Sprintf("input row %q, cursor at column %d", row, col), func(v termtest.View) bool {
		return v.CursorRow == strings.TrimRight(row, " ") && v.Col == col
	})
}

// The case, in the real client: wide characters are moved over and
// deleted as the screen shows them, Ctrl-U leaves what is after the
// cursor, and what bob receives is what alice saw.
func TestWideCharacterEditing(t *testing.T) {
	t.Parallel()
	srv, alice, bob := startAlice(t, env(term, ""))
	alice.typeKeys("msg 1 bob 日本語abc")
	alice.waitCursor("alice", "msg 1 bob 日本語abc", "msg 1 bob 日本語abc")
	alice.typeKeys(termtest.Left + termtest.Left + termtest.Left + termtest.Left)
	alice.waitCursor("alice", "msg 1 bob 日本語abc", "msg 1 bob 日本")
	alice.typeKeys(termtest.Backspace)
	alice.waitCursor("alice", "msg 1 bob 日語abc", "msg 1 bob 日")
	alice.typeKeys(termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice 日語abc")

	alice.typeKeys("msg 1 bob 日本語abc" + termtest.Left + termtest.Left + termtest.Left + termtest.Left + termtest.CtrlU)
	alice.waitCursor("alice", "語abc", "")
	alice.typeKeys("msg 1 bob " + termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice 語abc")

	// Emoji and combining marks are one character each.
	alice.typeKeys("msg 1 bob a👩\u200d👩\u200d👧e\u0301" + termtest.Backspace + termtest.Backspace + "b" + termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice ab")

	// History lines of wide characters come back clean.
	alice.typeKeys("list" + termtest.Enter)
	alice.waitRow("list: alice bob")
	alice.typeKeys(termtest.Up)
	alice.waitCursor("alice", "list", "list")
	alice.typeKeys(termtest.Up)
	alice.waitCursor("alice", "msg 1 bob ab", "msg 1 bob ab")
	alice.typeKeys(termtest.Up)
	alice.waitCursor("alice", "msg 1 bob 語abc", "msg 1 bob 語abc")
	alice.typeKeys(termtest.Up)
	alice.waitCursor("alice", "msg 1 bob 日語abc", "msg 1 bob 日語abc")
	alice.typeKeys(termtest.Down + termtest.Down + termtest.Down + termtest.Down)
	alice.waitCursor("alice", "", "")
	quit(t, srv, alice)
}

// A lone Esc swallows no key: Enter and Ctrl-C after it work. Esc leaves a
// Ctrl-R search with the line found; Alt-B and Alt-F move by words.
func TestEscAndWords(t *testing.T) {
	t.Parallel()
	srv, alice, bob := startAlice(t, env(term, ""))
	alice.typeKeys("msg 1 bob one" + termtest.Esc)
	alice.typeKeys(termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice one")

	alice.typeKeys(termtest.CtrlR + "one")
	alice.waitScreen("the search", func(v termtest.View) bool {
		return v.CursorRow == "(reverse-i-search)`one': msg 1 bob one"
	})
	alice.typeKeys(termtest.Esc)
	alice.waitCursor("alice", "msg 1 bob one", "msg 1 bob ")
	alice.typeKeys(termtest.CtrlE + " two three" + termtest.AltB + termtest.AltB + "x" + termtest.AltF + "y" + termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice one xtwoy three")

	alice.typeKeys("unfinished" + termtest.Esc)
	alice.typeKeys(termtest.CtrlC)
	expectExit(t, alice, 0)
	srv.Out.WaitLine(t, "disconnected: alice", timeout)
	alice.waitScreen("quitting, then a fresh row", func(v termtest.View) bool { return endsWith(v, "quitting") })
	alice.expectTerminalRestored()
}

// A line wider than the terminal scrolls sideways on one row: messages
// arriving meanwhile are printed above it and it stays whole.
func TestLongLineScrollsSideways(t *testing.T) {
	t.Parallel()
	srv, alice, bob := startAlice(t, env(term, ""))
	text := strings.Repeat("日本語 and more, ", 20) // 320 columns
	alice.typeKeys("msg 1 bob " + text)
	alice.waitScreen("the end of the line, cut on the left", func(v termtest.View) bool {
		return strings.HasPrefix(v.CursorRow, "alice> <") && strings.HasSuffix(v.CursorRow, "日本語 and more,") &&
			v.Col == uniseg.StringWidth(v.CursorRow)+1
	})
	bob.Write(frame("send_message", "1 alice hello while you type"))
	v := alice.waitScreen("the message above the input row", func(v termtest.View) bool {
		tr := v.Transcript
		return len(tr) >= 2 && tr[len(tr)-2] == "msg: bob: hello while you type" && strings.HasPrefix(tr[len(tr)-1], "alice> <")
	})
	for _, row := range v.Rows {
		if strings.Contains(row, "alice>") && row != v.CursorRow {
			t.Fatalf("the input row was left behind:\n%s", alice.scr)
		}
	}
	alice.typeKeys(termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice "+strings.TrimRight(text, " "))
	alice.waitInput("alice", "")
	quit(t, srv, alice)
}
