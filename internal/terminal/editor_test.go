package terminal

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rivo/uniseg"

	"github.com/gochat/chat/internal/terminal/termtest"
)

// waitCursor waits until the cursor's row is the prompt and input, with
// the cursor after before (a prefix of input), in display columns.
func (h *harness) waitCursor(input, before string) {
	h.t.Helper()
	row, col := "alice> "+input, uniseg.StringWidth("alice> "+before)
	h.waitScreen(fmt.Sprintf("input row %q, cursor at column %d", row, col), func(v termtest.View) bool {
		return v.CursorRow == strings.TrimRight(row, " ") && v.Col == col
	})
}

// The case: the screen follows the line as wide characters are
// moved over and deleted, and the line sent is what the screen shows.
func TestWideCharactersOnScreen(t *testing.T) {
	h := newHarness(t, false)
	h.typeKeys("msg 1 bob 日本語abc")
	h.waitCursor("msg 1 bob 日本語abc", "msg 1 bob 日本語abc")
	h.typeKeys(termtest.Left + termtest.Left + termtest.Left + termtest.Left)
	h.waitCursor("msg 1 bob 日本語abc", "msg 1 bob 日本")
	h.typeKeys(termtest.Backspace)
	h.waitCursor("msg 1 bob 日語abc", "msg 1 bob 日")
	h.typeKeys(termtest.CtrlU)
	h.waitCursor("語abc", "")
	h.typeKeys("msg 1 bob ")
	h.waitCursor("msg 1 bob 語abc", "msg 1 bob ")
	h.typeKeys("\r")
	h.expectLine("msg 1 bob 語abc")
}

// Emoji (ZWJ sequences and flags) and combining marks are one character
// each for the cursor and for deletion.
func TestGraphemeClusters(t *testing.T) {
	family := "👩\u200d👩\u200d👧"
	for _, c := range []struct {
		name, keys, want string
	}{
		{"backspace deletes a ZWJ sequence whole", "a" + family + termtest.Backspace + "b\r", "ab"},
		{"backspace deletes a base and its mark", "ae\u0301" + termtest.Backspace + "b\r", "ab"},
		{"left steps over a flag", "a🇫🇷" + termtest.Left + "b\r", "ab🇫🇷"},
		{"delete takes a ZWJ sequence whole", "a" + family + "c" + termtest.Left + termtest.Left + "\x1b[3~\r", "ac"},
		{"transpose swaps clusters", "e\u0301x\x14\r", "xe\u0301"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, false)
			h.typeKeys(c.keys)
			h.expectLine(c.want)
		})
	}
	h := newHarness(t, false)
	h.typeKeys("x" + family + "y" + termtest.Left)
	h.waitCursor("x"+family+"y", "x"+family)
}

// Recalling history lines of wide characters leaves nothing behind.
func TestHistoryWithWideCharacters(t *testing.T) {
	h := newHarness(t, false)
	for _, l := range []string{"msg 1 bob 日本語日本語", "list"} {
		h.typeKeys(l + "\r")
		h.expectLine(l)
	}
	h.typeKeys(termtest.Up)
	h.waitCursor("list", "list")
	h.typeKeys(termtest.Up)
	h.waitCursor("msg 1 bob 日本語日本語", "msg 1 bob 日本語日本語")
	h.typeKeys(termtest.Down)
	h.waitCursor("list", "list")
	h.typeKeys(termtest.Down)
	h.waitCursor("", "")
}

// A lone Esc does nothing and swallows nothing: Enter and Ctrl-C after it
// still work, at once or later.
func TestLoneEsc(t *testing.T) {
	h := newHarness(t, false)
	h.typeKeys("list")
	h.typeKeys(termtest.Esc)
	h.typeKeys("\r")
	h.expectLine("list")
	h.typeKeys("help" + termtest.Esc + "\r") // in one read
	h.expectLine("help")
	h.typeKeys("ab" + termtest.Esc + "x\r") // Esc then a letter that is no Alt key
	h.expectLine("abx")
	h.typeKeys(termtest.Esc)
	h.typeKeys(termtest.CtrlC)
	if _, err := h.nextLine(); err == nil {
		t.Fatal("Ctrl-C after Esc did not end the input")
	}
}

// Esc leaves a reverse search with the line found, as in bash.
func TestEscEndsSearch(t *testing.T) {
	h := newHarness(t, false)
	for _, l := range []string{"msg 1 bob first", "list"} {
		h.typeKeys(l + "\r")
		h.expectLine(l)
	}
	h.typeKeys(termtest.CtrlR + "first")
	h.waitScreen("the match", func(v termtest.View) bool {
		return v.CursorRow == "(reverse-i-search)`first': msg 1 bob first"
	})
	h.typeKeys(termtest.Esc)
	h.waitCursor("msg 1 bob first", "msg 1 bob ")
	h.typeKeys(termtest.CtrlE + "!\r")
	h.expectLine("msg 1 bob first!")
}

// Alt-b and Alt-f move by words; Ctrl-Left and Ctrl-Right too.
func TestWordMovement(t *testing.T) {
	h := newHarness(t, false)
	h.typeKeys("msg 1 bob 日本 two")
	h.typeKeys(termtest.AltB)
	h.waitCursor("msg 1 bob 日本 two", "msg 1 bob 日本 ")
	h.typeKeys(termtest.AltB + termtest.AltB)
	h.waitCursor("msg 1 bob 日本 two", "msg 1 ")
	h.typeKeys(termtest.AltF)
	h.waitCursor("msg 1 bob 日本 two", "msg 1 bob")
	h.typeKeys("\x1b[1;5C")
	h.waitCursor("msg 1 bob 日本 two", "msg 1 bob 日本")
	h.typeKeys("\x1b[1;5D" + "X\r")
	h.expectLine("msg 1 bob X日本 two")
}

// Ctrl-K deletes to the end; Ctrl-L clears the screen and keeps the line.
func TestKillAndClear(t *testing.T) {
	h := newHarness(t, false)
	h.typeKeys("msg 1 bob 日本語" + termtest.Left + termtest.Left + termtest.CtrlK)
	h.waitCursor("msg 1 bob 日", "msg 1 bob 日")
	h.term.Hooks().Print(message("bob", "before the clear"))
	h.waitScreen("the line", func(v termtest.View) bool { return v.Contains("msg: bob: before the clear") })
	h.typeKeys(termtest.CtrlL)
	h.waitScreen("a cleared screen", func(v termtest.View) bool {
		return v.Rows[0] == "alice> msg 1 bob 日" && v.Row == 0
	})
	h.typeKeys("\r")
	h.expectLine("msg 1 bob 日")
}

// A line longer than the row scrolls sideways: the row never wraps, the
// cursor stays on it, and lines printed meanwhile go above it whole.
func TestLongLineScrolls(t *testing.T) {
	h := newHarness(t, false)
	text := strings.Repeat("日本語abc", 40) // 360 columns
	h.typeKeys("msg 1 bob " + text)
	v := h.waitScreen("the end of the line, cut on the left", func(v termtest.View) bool {
		return strings.HasPrefix(v.CursorRow, "alice> <") && strings.HasSuffix(v.CursorRow, "日本語abc") && v.Col == uniseg.StringWidth(v.CursorRow)
	})
	if w := uniseg.StringWidth(v.CursorRow); w >= cols {
		t.Fatalf("input row is %d columns wide, on a screen of %d", w, cols)
	}
	h.term.Hooks().Print(message("bob", "hi"))
	h.waitScreen("the line above the input", func(v termtest.View) bool {
		tr := v.Transcript
		return len(tr) >= 2 && tr[len(tr)-2] == "msg: bob: hi" && strings.HasPrefix(tr[len(tr)-1], "alice> <")
	})
	h.typeKeys(termtest.CtrlA)
	h.waitScreen("the start of the line, cut on the right", func(v termtest.View) bool {
		return strings.HasPrefix(v.CursorRow, "alice> msg 1 bob 日本語abc") && strings.HasSuffix(v.CursorRow, ">") && v.Col == len("alice> ")
	})
	h.typeKeys("\r")
	h.expectLine("msg 1 bob " + text)
	// The entered line is left on screen whole.
	h.waitScreen("the whole line above the prompt", func(v termtest.View) bool {
		return v.CursorRow == "alice>" && strings.Contains(strings.Join(v.Transcript, ""), text)
	})
}

// BenchmarkLongLine edits and draws a line of 65,536 bytes (wide
// characters and words): the cost of one key on the longest message.
func BenchmarkLongLine(b *testing.B) {
	ed := newEditor(1 << 20)
	ed.insert(strings.Repeat("日本語 abc ", 65536/13))
	var out strings.Builder
	s := newScreen(&out, &out, palette{}, func() int { return 100 }, ed)
	s.beginInput(newPrompt("alice> ", "alice> "))
	keys := []keyKind{keyWordLeft, keyLeft, keyBackspace, keyHome, keyWordRight, keyRight, keyDelete, keyEnd}
	b.ResetTimer()
	for i := range b.N {
		ed.edit(keys[i%len(keys)])
		out.Reset()
		s.redrawInput()
	}
}
