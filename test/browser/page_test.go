package browser

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gochat/chat/internal/testbin"
)

// errorColor is the page's --error colour, as getComputedStyle gives it.
const errorColor = "rgb(179, 38, 30)"

// annAndTerm starts a server with a terminal user, term, who saves files
// into dir, and a tab joined as ann with term ticked.
func annAndTerm(t *testing.T) (srv *chatServer, term *testbin.Proc, dir string, ann *tab) {
	t.Helper()
	srv, b, term, dir := withTerminal(t, "term")
	ann = joinTab(t, b, srv.pageURL, "ann")
	ann.tick("term")
	return srv, term, dir, ann
}

// TestBrowserSpacedFileName (issue 23, item 1): a file whose name has a
// space is sent under the protocol's name, but the page names it as the
// user picked it from start to end.
func TestBrowserSpacedFileName(t *testing.T) {
	_, term, dir, ann := annAndTerm(t)
	path := writeFile(t, t.TempDir(), "web notes.txt", []byte("eighteen bytes...\n"))
	ann.run(chromedp.SetUploadFiles(chromedp.ID("file"), []string{path}))
	term.Out.WaitLine(t, "file: ann: web_notes.txt", timeout)
	sameFile(t, filepath.Join(dir, "term_web_notes.txt"), []byte("eighteen bytes...\n"))
	ann.waitJS("the sent mark", `[...document.querySelectorAll('#log li.outgoing')].some((li) => li.textContent.includes('— sent'))`)
	label := eval[string](ann, `document.querySelector('#log li.outgoing .text').textContent`)
	want := "web notes.txt (sent as web_notes.txt) (18 B) — sent"
	if label != want {
		t.Fatalf("the sent file reads %q, want %q", label, want)
	}
}

// TestBrowserQueuedMessage (issue 23, item 2): a message typed while a
// file is being sent waits behind it, and looks so until it has gone.
func TestBrowserQueuedMessage(t *testing.T) {
	_, term, _, ann := annAndTerm(t)
	// The drop and the message happen in one evaluation: the page's
	// script cannot send 16 MiB in the middle of it, so the message is
	// certainly typed during the upload.
	state := eval[map[string]any](ann, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([new Uint8Array(16 << 20)], 'big.bin'));
		document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
		document.getElementById('text').value = 'after the file';
		document.getElementById('send-form').requestSubmit();
		const li = [...document.querySelectorAll('#log li.mine')].find((li) => li.textContent.includes('after the file'));
		const cs = getComputedStyle(li);
		return {cls: li.className, text: li.textContent, opacity: Number(cs.opacity), border: cs.borderStyle};
	})()`)
	if state["opacity"].(float64) >= 1 && state["border"] == "solid" {
		t.Errorf("the waiting message looks like a sent one: %v", state)
	}
	if !containsText(state["text"], "waiting") {
		t.Errorf("the waiting message does not say it waits: %v", state)
	}
	term.Out.WaitLine(t, "file: ann: big.bin", timeout)
	term.Out.WaitLine(t, "msg: ann: after the file", timeout)
	ann.waitJS("the message shown as sent", `(() => {
		const li = [...document.querySelectorAll('#log li.mine')].find((li) => li.textContent.includes('after the file'));
		return !li.classList.contains('queued') && !li.textContent.includes('waiting') && li.textContent.includes('sent') && getComputedStyle(li).opacity === '1';
	})()`)
}

func containsText(v any, s string) bool {
	str, ok := v.(string)
	return ok && strings.Contains(str, s)
}

// offlineControls checks the page's controls once the session is over
// (issue 23, item 3): no Leave button, no users listed as online, nothing
// that sends enabled.
func offlineControls(t *testing.T, tb *tab, when string) {
	t.Helper()
	tb.waitJS("the banner "+when, `!document.getElementById('banner').hidden`)
	got := eval[map[string]any](tb, `({
		leave: !document.getElementById('leave').hidden,
		users: document.querySelectorAll('#users input:not(:disabled)').length,
		text: !document.getElementById('text').disabled,
		all: !document.getElementById('all').disabled,
		none: !document.getElementById('none').disabled,
		refresh: !document.getElementById('refresh').disabled,
		send: !document.getElementById('send').disabled,
		file: !document.getElementById('pick-file').disabled,
	})`)
	for k, v := range got {
		if v != false && v != float64(0) {
			t.Errorf("%s: %s still usable (%v)", when, k, v)
		}
	}
}

// TestBrowserOfflineState (issue 23, item 3): after Leave and after the
// server stops, the controls agree that the session is over; leaving is
// not an error; Join again keeps the conversation.
func TestBrowserOfflineState(t *testing.T) {
	srv, term, _, ann := annAndTerm(t)
	ann.say("before leaving")
	term.Out.WaitLine(t, "msg: ann: before leaving", timeout)

	ann.run(chromedp.Click(chromedp.ID("leave")))
	srv.Out.WaitLine(t, "disconnected: ann", timeout)
	offlineControls(t, ann, "after Leave")
	if c := eval[string](ann, `getComputedStyle(document.getElementById('banner')).color`); c == errorColor {
		t.Errorf("leaving is shown as an error (colour %s)", c)
	}

	// Join again: the conversation stays, and the controls work again.
	ann.run(chromedp.Click(chromedp.ID("rejoin")))
	ann.waitJS("the join form", `!document.getElementById('join-view').hidden`)
	ann.run(chromedp.Click(chromedp.ID("join")))
	ann.joined("ann")
	if !eval[bool](ann, `[...document.querySelectorAll('#log li')].some((li) => li.textContent.includes('before leaving'))`) {
		t.Errorf("Join again wiped the conversation")
	}
	on := eval[bool](ann, `!document.getElementById('text').disabled && !document.getElementById('all').disabled && !document.getElementById('leave').hidden`)
	if !on {
		t.Errorf("after joining again the controls stay off")
	}
	ann.tick("term")
	ann.say("back again")
	term.Out.WaitLine(t, "msg: ann: back again", timeout)

	// The server stops.
	if code := srv.Stop(t, timeout); code != 0 {
		t.Errorf("the server exited %d on SIGTERM", code)
	}
	ann.waitJS("the lost-connection banner", `document.getElementById('banner-text').textContent.includes('connection to the server lost')`)
	offlineControls(t, ann, "after the server stopped")
	if c := eval[string](ann, `getComputedStyle(document.getElementById('banner')).color`); c != errorColor {
		t.Errorf("a lost connection is not shown as an error (colour %s)", c)
	}
}

// TestBrowserAllAndBubbles (issue 23, item 4): All ticks everyone but
// yourself, and a short message's bubble is as wide as its text.
func TestBrowserAllAndBubbles(t *testing.T) {
	srv, b, term, _ := withTerminal(t, "term")
	ann := joinTab(t, b, srv.pageURL, "ann")
	ann.waitJS("term in the list", hasUser("term"))
	ann.run(chromedp.Click(chromedp.ID("all")))
	if to := eval[string](ann, `document.getElementById('to').textContent`); to != "term" {
		t.Fatalf("All ticks %q, want term alone", to)
	}
	ann.say("hi")
	term.Out.WaitLine(t, "msg: ann: hi", timeout)
	term.Send(t, "msg 1 ann yo")
	ann.waitJS("term's message", `[...document.querySelectorAll('#log li.msg')].some((li) => li.textContent.includes('yo'))`)
	widths := eval[[]float64](ann, `[...document.querySelectorAll('#log li.mine, #log li.msg')].map((li) => li.getBoundingClientRect().width)`)
	for _, w := range widths {
		// "you to term · 12:00" in the meta line is the widest part.
		if w > 260 {
			t.Errorf("a bubble of two letters is %.0f px wide", w)
		}
	}
	if len(widths) != 2 {
		t.Fatalf("%d bubbles, want 2", len(widths))
	}
}
