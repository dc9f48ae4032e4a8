package terminal

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/client"
	"github.com/gochat/chat/internal/terminal/termtest"
)

// wait is the deadline of every wait: generous, for a loaded machine.
const wait = 10 * time.Second

const rows, cols = 30, 80

type lineResult struct {
	line string
	err  error
}

// harness runs a Terminal on an emulated screen, with a goroutine reading
// lines from it as the client does.
type harness struct {
	t     *testing.T
	term  *Terminal
	scr   *termtest.Screen
	keys  chan []byte
	lines chan lineResult
}

func newHarness(t *testing.T, color bool) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		scr:   termtest.New(rows, cols),
		keys:  make(chan []byte),
		lines: make(chan lineResult, 100),
	}
	h.term = newTerminal("alice", h.keys, h.scr, h.scr, palette{on: color}, func() (int, int) { return cols, rows })
	h.term.Hooks().Joined() // as the session does once the join stands
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			line, err := h.term.ReadLine()
			h.lines <- lineResult{line, err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		h.term.Close()
		<-done
	})
	return h
}

// typeKeys hands keys to the editor.
func (h *harness) typeKeys(keys string) {
	h.t.Helper()
	select {
	case h.keys <- []byte(keys):
	case <-time.After(wait):
		h.t.Fatalf("the editor took no keys for %v\n%s", wait, h.scr)
	}
}

// waitScreen waits until cond holds for the screen.
func (h *harness) waitScreen(what string, cond func(v termtest.View) bool) termtest.View {
	h.t.Helper()
	return h.scr.Await(h.t, wait, what, cond)
}

// waitCursorRow waits until the cursor's row is row.
func (h *harness) waitCursorRow(row string) termtest.View {
	h.t.Helper()
	return h.waitScreen(fmt.Sprintf("cursor row %q", row), func(v termtest.View) bool { return v.CursorRow == row })
}

// waitInput waits until the cursor's row shows the prompt and input.
func (h *harness) waitInput(input string) {
	h.t.Helper()
	h.waitScreen(fmt.Sprintf("input row %q", "alice> "+input), func(v termtest.View) bool {
		return v.CursorRow == strings.TrimRight("alice> "+input, " ") && v.Col == len("alice> "+input)
	})
}

func (h *harness) nextLine() (string, error) {
	h.t.Helper()
	select {
	case r := <-h.lines:
		return r.line, r.err
	case <-time.After(wait):
		h.t.Fatalf("no line after %v\n%s", wait, h.scr)
		return "", nil
	}
}

func (h *harness) expectLine(want string) {
	h.t.Helper()
	got, err := h.nextLine()
	if err != nil || got != want {
		h.t.Fatalf("ReadLine = %q, %v; want %q\n%s", got, err, want, h.scr)
	}
}

func TestLinesPrintedWhileTypingKeepTheInputWhole(t *testing.T) {
	h := newHarness(t, false)
	h.typeKeys("msg 1 bob hel")
	h.waitInput("msg 1 bob hel")

	// Four goroutines print 40 lines at once, as the receiver and the
	// session do (three on stdout, one on stderr), while the user goes on
	// typing.
	show := h.term.Hooks().Print
	event := func(g, i int) client.Event {
		if g == 3 {
			return client.Event{Kind: client.EventDiagnostic, Text: fmt.Sprintf("client: note %d of a diagnostic that is fairly long", i)}
		}
		return message(fmt.Sprintf("bob%d", g), fmt.Sprintf("line %d of a message that is fairly long", i))
	}
	var wg sync.WaitGroup
	var want []string
	for g := range 4 {
		for i := range 10 {
			want = append(want, event(g, i).String())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				show(event(g, i))
			}
		}()
	}
	h.typeKeys("lo")
	wg.Wait()
	h.waitInput("msg 1 bob hello")

	v := h.waitScreen("every line", func(v termtest.View) bool {
		for _, w := range want {
			if !v.Contains(w) {
				return false
			}
		}
		return true
	})
	// Nothing else is on the screen: the hint, the 40 lines (each once,
	// whole, in the order each goroutine printed them), the input row.
	tr := v.Transcript
	if tr[0] != hint || tr[len(tr)-1] != "alice> msg 1 bob hello" || len(tr) != 42 {
		t.Fatalf("screen is not hint, 40 lines, input:\n%s", h.scr)
	}
	for g := range 4 {
		var got []string
		prefix := fmt.Sprintf("msg: bob%d: ", g)
		if g == 3 {
			prefix = "client: note "
		}
		for _, l := range tr {
			if strings.HasPrefix(l, prefix) {
				got = append(got, l)
			}
		}
		if !slices.Equal(got, want[g*10:g*10+10]) {
			t.Fatalf("lines of goroutine %d: %q", g, got)
		}
	}
	h.typeKeys("\r")
	h.expectLine("msg 1 bob hello")
	v = h.waitCursorRow("alice>") // the next prompt
	if v.Transcript[len(v.Transcript)-2] != "alice> msg 1 bob hello" {
		t.Fatalf("the entered line is not kept above the prompt:\n%s", h.scr)
	}
}

func TestEditingKeysAndHistory(t *testing.T) {
	h := newHarness(t, false)
	h.typeKeys("list\r")
	h.expectLine("list")
	h.typeKeys("one two three")
	h.typeKeys(termtest.CtrlW)
	h.waitInput("one two ")
	h.typeKeys(termtest.CtrlA + "x" + termtest.CtrlE + "end")
	h.waitInput("xone two end")
	h.typeKeys("\r")
	h.expectLine("xone two end")
	h.typeKeys("junk" + termtest.CtrlU + "help\r")
	h.expectLine("help")

	h.typeKeys(termtest.Up)
	h.waitInput("help")
	h.typeKeys(termtest.Up + termtest.Up)
	h.waitInput("list")
	h.typeKeys(termtest.Down)
	h.waitInput("xone two end")
	h.typeKeys("\r")
	h.expectLine("xone two end")
	// Blank lines are not kept, nor a repeat of the latest line; an
	// older line entered again is.
	h.typeKeys("   \r")
	h.expectLine("   ")
	h.typeKeys(termtest.Up + "\r")
	h.expectLine("xone two end")
	var got []string
	for i := h.term.hist.Len() - 1; i >= 0; i-- {
		got = append(got, h.term.hist.At(i))
	}
	if want := []string{"list", "xone two end", "help", "xone two end"}; !slices.Equal(got, want) {
		t.Fatalf("history = %q, want %q", got, want)
	}
}

func TestCtrlCAndCtrlDEndTheInput(t *testing.T) {
	h := newHarness(t, false)
	h.typeKeys("abc" + termtest.CtrlA + termtest.CtrlD) // Ctrl-D on text deletes
	h.waitScreen("the a deleted", func(v termtest.View) bool { return v.CursorRow == "alice> bc" && v.Col == 7 })
	h.typeKeys(termtest.CtrlE + termtest.CtrlU + termtest.CtrlD)
	if _, err := h.nextLine(); err != io.EOF {
		t.Fatalf("Ctrl-D on an empty line: err = %v, want io.EOF", err)
	}

	h = newHarness(t, false)
	h.typeKeys("some text" + termtest.CtrlC)
	if _, err := h.nextLine(); err != io.EOF {
		t.Fatalf("Ctrl-C: err = %v, want io.EOF", err)
	}
	// The session prints its last line, then the front end closes: the
	// prompt and the abandoned text leave the screen.
	h.term.Hooks().Print(client.Event{Kind: client.EventQuitting})
	h.term.Close()
	v := h.waitScreen("quitting as the last row", func(v termtest.View) bool {
		return v.Transcript[len(v.Transcript)-1] == "quitting"
	})
	if v.CursorRow != "" || v.Col != 0 {
		t.Fatalf("cursor not on a fresh row after Close:\n%s", h.scr)
	}
	h.term.Hooks().Print(client.Event{Kind: client.EventDiagnostic, Text: "after close"})
	h.waitScreen("a line printed after Close", func(v termtest.View) bool { return v.Contains("after close") })
}

func TestReverseSearch(t *testing.T) {
	h := newHarness(t, false)
	for _, l := range []string{"msg 1 bob first", "list", "msg 1 carol second"} {
		h.typeKeys(l + "\r")
		h.expectLine(l)
	}
	h.typeKeys(termtest.CtrlR)
	h.waitCursorRow("(reverse-i-search)`':") // the search prompt
	h.typeKeys("m")
	h.typeKeys("s")
	h.typeKeys("g")
	h.waitCursorRow("(reverse-i-search)`msg': msg 1 carol second") // the latest match
	h.typeKeys(termtest.CtrlR)
	h.waitCursorRow("(reverse-i-search)`msg': msg 1 bob first") // the older match
	h.typeKeys("x")
	h.waitCursorRow("(failed reverse-i-search)`msgx': msg 1 bob first") // a failed search
	h.typeKeys(termtest.Backspace)
	h.waitCursorRow("(reverse-i-search)`msg': msg 1 carol second") // the query shortened
	h.typeKeys("\r")
	h.expectLine("msg 1 carol second")
	v := h.waitCursorRow("alice>") // the next prompt
	if got := v.Transcript[len(v.Transcript)-2]; got != "alice> msg 1 carol second" {
		t.Fatalf("entered row = %q, want it with the normal prompt\n%s", got, h.scr)
	}

	// Ctrl-G and Ctrl-C cancel, giving back the line as it was.
	h.typeKeys("draft" + termtest.CtrlR)
	h.typeKeys("l")
	h.waitCursorRow("(reverse-i-search)`l': msg 1 carol second") // a match
	h.typeKeys(termtest.CtrlG)
	h.waitInput("draft")
	h.typeKeys(termtest.CtrlR)
	h.typeKeys("i")
	h.waitCursorRow("(reverse-i-search)`i': list") // a match
	h.typeKeys(termtest.CtrlC)
	h.waitInput("draft")
	// An editing key ends the search and edits the line found.
	h.typeKeys(termtest.CtrlU + termtest.CtrlR)
	h.typeKeys("b")
	h.waitCursorRow("(reverse-i-search)`b': msg 1 bob first") // a match
	h.typeKeys(termtest.CtrlE)
	h.waitInput("msg 1 bob first")
	h.typeKeys("!\r")
	h.expectLine("msg 1 bob first!")
}

func TestTabCompletesOnScreen(t *testing.T) {
	h := newHarness(t, false)
	h.term.Hooks().Users([]string{"bob", "bobby", "carol"})
	h.typeKeys("m\t")
	h.waitInput("msg ")
	h.typeKeys("2 c\t")
	h.waitInput("msg 2 carol ")
	h.typeKeys("b\t")
	h.waitInput("msg 2 carol bob")
	h.typeKeys("\t") // bob or bobby: listed above the prompt
	v := h.waitScreen("the candidates", func(v termtest.View) bool { return v.Contains("bob  bobby") })
	if v.CursorRow != "alice> msg 2 carol bob" {
		t.Fatalf("input row after listing: %q", v.CursorRow)
	}
	h.typeKeys("b\t")
	h.waitInput("msg 2 carol bobby ")
	h.typeKeys("hi\r")
	h.expectLine("msg 2 carol bobby hi")
}

func TestProgressBarsAboveThePrompt(t *testing.T) {
	h := newHarness(t, false)
	progress := h.term.Hooks().Progress
	h.typeKeys("typing")
	h.waitInput("typing")
	progress(1, "recv", "big.bin", 1<<20, 4<<20, false)
	bar := regexp.MustCompile(`^receiving big\.bin \[=+>? *\]  25%  1\.0 MiB / 4\.0 MiB  .*/s  .* left$`)
	v := h.waitScreen("the bar", func(v termtest.View) bool {
		return len(v.Transcript) >= 2 && bar.MatchString(v.Transcript[len(v.Transcript)-2])
	})
	if v.CursorRow != "alice> typing" {
		t.Fatalf("input row under the bar: %q", v.CursorRow)
	}
	// A line printed meanwhile goes above the bar.
	h.term.Hooks().Print(message("bob", "hi"))
	h.waitScreen("the line above the bar", func(v termtest.View) bool {
		tr := v.Transcript
		return len(tr) >= 3 && tr[len(tr)-3] == "msg: bob: hi" && bar.MatchString(tr[len(tr)-2]) && tr[len(tr)-1] == "alice> typing"
	})
	// Entering a line keeps it above the bar.
	h.typeKeys("\r")
	h.expectLine("typing")
	h.waitScreen("the bar under the entered line", func(v termtest.View) bool {
		tr := v.Transcript
		return len(tr) >= 3 && tr[len(tr)-3] == "alice> typing" && bar.MatchString(tr[len(tr)-2]) && tr[len(tr)-1] == "alice>"
	})
	progress(2, "send", "notes.txt", 10, 10, false)
	progress(2, "send", "notes.txt", 10, 10, true)
	progress(1, "recv", "big.bin", 4<<20, 4<<20, true)
	// The bars go, and nothing claims the file reached anyone: the
	// session says that, once it knows.
	v = h.waitScreen("the bar gone", func(v termtest.View) bool {
		tr := v.Transcript
		return len(tr) >= 2 && tr[len(tr)-2] == "alice> typing" && tr[len(tr)-1] == "alice>"
	})
	for _, l := range v.Transcript {
		if strings.HasPrefix(l, "receiving") || strings.HasPrefix(l, "sent") {
			t.Fatalf("a bar or a summary is on the screen:\n%s", h.scr)
		}
	}
}

// TestProgressBarsOfOneName: two files of one name moving at once (from
// two senders) have a bar each, and one ending leaves the other's bar.
// They once shared one bar, their totals mixed.
func TestProgressBarsOfOneName(t *testing.T) {
	h := newHarness(t, false)
	progress := h.term.Hooks().Progress
	progress(1, "recv", "notes.txt", 1<<20, 4<<20, false)
	progress(2, "recv", "notes.txt", 3<<20, 4<<20, false)
	bars := func(v termtest.View) (quarter, most int) {
		for _, l := range v.Transcript {
			if strings.HasPrefix(l, "receiving notes.txt") {
				switch {
				case strings.Contains(l, "  25%  "):
					quarter++
				case strings.Contains(l, "  75%  "):
					most++
				}
			}
		}
		return quarter, most
	}
	h.waitScreen("a bar for each file", func(v termtest.View) bool {
		q, m := bars(v)
		return q == 1 && m == 1
	})
	progress(1, "recv", "notes.txt", 4<<20, 4<<20, true)
	h.waitScreen("the other file's bar alone", func(v termtest.View) bool {
		q, m := bars(v)
		return q == 0 && m == 1
	})
}

func TestHelpIsFollowedByKeys(t *testing.T) {
	h := newHarness(t, true)
	h.term.Hooks().Print(client.Event{Kind: client.EventHelp})
	v := h.waitScreen("the help", func(v termtest.View) bool { return v.Contains("Keys:") })
	text := strings.Join(v.Transcript, "\n")
	if !strings.Contains(text, client.HelpText+"\n"+keysHelp) {
		t.Fatalf("help text changed on screen:\n%s", text)
	}
}

func TestColoredLinesKeepTheirText(t *testing.T) {
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*m")
	on, off := palette{on: true}, palette{}
	events := []client.Event{
		message("alice", "hello: there  you"), message("a:b", "c"), message("bob", "incorrect user input format"),
		{Kind: client.EventFile, Sender: "bob", Text: "notes.txt"},
		{Kind: client.EventList, Names: []string{"alice", "bob", "carol"}}, {Kind: client.EventList, Names: []string{}},
		{Kind: client.EventDisconnected, Text: "server full"}, {Kind: client.EventQuitting}, {Kind: client.EventInputError},
	}
	for _, ev := range events {
		l := ev.String()
		c := on.line(ev)
		if ansi.ReplaceAllString(c, "") != l {
			t.Errorf("line(%q) = %q: text changed", l, c)
		}
		if c == l {
			t.Errorf("line(%q) has no color", l)
		}
		if off.line(ev) != l {
			t.Errorf("colors off: line(%q) = %q", l, off.line(ev))
		}
	}
	if c := on.line(message("a:b", "c")); !strings.Contains(c, on.nick("a:b")) {
		t.Errorf("sender a:b not colored as a name: %q", c)
	}
	for _, l := range strings.Split(client.HelpText+"\n"+keysHelp, "\n") {
		if got := ansi.ReplaceAllString(on.helpLine(l), ""); got != l {
			t.Errorf("helpLine(%q) = %q", l, got)
		}
	}
	if off.prompt("alice") != "alice> " || off.nick("alice") != "alice" {
		t.Error("no colors means a plain prompt and plain names")
	}
}

// A name has one color wherever it shows (prompt, message lines, lists),
// and different names get different colors.
func TestNamesKeepTheirColor(t *testing.T) {
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*m")
	on := palette{on: true}
	colors := map[string]bool{}
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"} {
		nick := on.nick(name)
		if nick == name || ansi.ReplaceAllString(nick, "") != name {
			t.Errorf("nick(%q) = %q: not a colored %q", name, nick, name)
		}
		for _, where := range []string{
			on.prompt(name),
			on.line(message(name, "hello")),
			on.line(client.Event{Kind: client.EventFile, Sender: name, Text: "notes.txt"}),
			on.line(client.Event{Kind: client.EventList, Names: []string{"zed", name}}),
		} {
			if !strings.Contains(where, nick) {
				t.Errorf("%q shows %q in another color than %q", where, name, nick)
			}
		}
		colors[ansi.FindString(nick)] = true
	}
	if len(colors) < 3 {
		t.Errorf("8 names share %d colors: %v", len(colors), colors)
	}
}

func TestColorWanted(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{"TERM": "xterm"}, true},
		{map[string]string{}, true},
		{map[string]string{"TERM": "xterm", "NO_COLOR": "1"}, false},
		{map[string]string{"TERM": "xterm", "NO_COLOR": ""}, true},
		{map[string]string{"TERM": "dumb"}, false},
	} {
		if got := ColorWanted(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("ColorWanted(%v) = %v", c.env, got)
		}
	}
}
