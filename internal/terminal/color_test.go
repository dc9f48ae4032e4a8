package terminal

import (
	"bytes"
	"testing"

	"github.com/gochat/chat/internal/client"
	"github.com/gochat/chat/internal/terminal/termtest"
)

// message returns the event of a message from sender.
func message(sender, text string) client.Event {
	return client.Event{Kind: client.EventMessage, Sender: sender, Text: text}
}

// diagnostic returns the event of a diagnostic line on stderr.
func diagnostic(line string) client.Event {
	return client.Event{Kind: client.EventDiagnostic, Text: line}
}

// A line on stderr is colored by what the session says it is: a file sent
// green, a join or leave notice dim, a diagnostic yellow; never by what
// its text looks like (issue 24 item 3). The look-alikes were colored by
// their text: a path typed that holds "join and leave notices" made its
// error dim as a notice, a user named sent made "client: sent stopped
// sending ..." green as a file sent.
func TestStderrColors(t *testing.T) {
	for _, tc := range []struct {
		ev   client.Event
		attr string
	}{
		{client.Event{Kind: client.EventSent, Text: "client: sent big.bin to bob (8 B)"}, sgrGreen},
		{client.Event{Kind: client.EventPresence, Text: "client: carol joined"}, sgrDim},
		{client.Event{Kind: client.EventPresence, Text: "client: carol left"}, sgrDim},
		{client.Event{Kind: client.EventPresence, Text: "client: more than 100 users online: join and leave notices pause"}, sgrDim},
		{client.Event{Kind: client.EventPresence, Text: "client: join and leave notices resume"}, sgrDim},
		{diagnostic("client: cannot read x.txt: no such file or directory"), sgrYellow},
		{diagnostic("client: big.bin did not reach bob (they left or were cut off before they had it all)"), sgrYellow},
		{diagnostic("client: N must be at least 1"), sgrYellow},
		// Look-alikes.
		{diagnostic("client: cannot read join and leave notices: no such file or directory"), sgrYellow},
		{diagnostic(`client: sent stopped sending "x.bin"; nothing saved`), sgrYellow},
		{diagnostic("client: sent joined"), sgrYellow},
	} {
		h := newHarness(t, true)
		h.term.Hooks().Print(tc.ev)
		want := []byte(h.term.pal.paint(tc.ev.Text, tc.attr) + "\r\n")
		h.waitScreen("the line "+tc.ev.Text+" colored "+tc.attr, func(v termtest.View) bool { return bytes.Contains(v.Raw, want) })
	}
}

// A message whose text reads like the help's first line or the error line
// is shown as a message: not colored as the error, not followed by the
// keys as the help is (issue 24 item 3).
func TestMessagesThatLookLikeOtherLines(t *testing.T) {
	h := newHarness(t, true)
	pal := h.term.pal
	show := h.term.Hooks().Print
	for _, text := range []string{client.ErrInput.Error(), "Commands:", "list: alice bob", "disconnected: server full", "quitting"} {
		show(message("bob", text))
		want := []byte(pal.paint("msg:", sgrDim) + " " + pal.nick("bob") + ": " + text + "\r\n")
		v := h.waitScreen("the message "+text, func(v termtest.View) bool { return bytes.Contains(v.Raw, want) })
		if bad := pal.paint(text, sgrYellow); bytes.Contains(v.Raw, []byte(bad)) {
			t.Errorf("message %q colored as an error: %q", text, v.Raw)
		}
	}
	show(message("bob", "last"))
	v := h.waitScreen("the last message", func(v termtest.View) bool { return v.Contains("msg: bob: last") })
	if v.Contains("Keys:") {
		t.Fatalf("the keys follow what is not the help:\n%s", h.scr)
	}
	show(client.Event{Kind: client.EventHelp})
	h.waitScreen("the keys after the help", func(v termtest.View) bool { return v.Contains("Keys:") })
}
