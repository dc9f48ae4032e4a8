package browser

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/gochat/chat/internal/testbin"
)

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestBrowserSession: two browser users and a terminal user chat in one
// namespace; the page shows the refusals for a taken name and a full
// server; files go browser -> terminal (picker and drop) and terminal ->
// browser byte-identical; hostile text and filenames stay text; the page
// says so when the server goes away.
func TestBrowserSession(t *testing.T) {
	needBrowser(t)
	srv := startServer(t, "--max-clients", "3")
	b := newBrowser(t)
	dir := t.TempDir()

	ann := joinTab(t, b, srv.pageURL, "ann")
	srv.Out.WaitLine(t, "join: ann", timeout)
	bob := joinTab(t, b, srv.pageURL, "bob")

	// A taken name: refused, the form stays, and it says why.
	carl := openTab(t, b, srv.pageURL)
	carl.join("bob")
	carl.waitJS("the taken-name refusal", `document.getElementById('join-error').textContent.includes('is taken or not allowed')`)
	srv.Out.WaitLine(t, "disconnected: username not available", timeout)
	// A name the page itself refuses never reaches the server.
	carl.join("two words")
	carl.waitJS("the page's own refusal", `document.getElementById('join-error').textContent.includes('cannot contain spaces')`)

	term := srv.terminal(t, "term", dir)

	// The server is full now (3 users): the page says so.
	carl.join("carl")
	carl.waitJS("the full-server refusal", `document.getElementById('join-error').textContent.includes('server is full')`)
	srv.Out.WaitLine(t, "disconnected: server full", timeout)

	// A message to a browser user and the terminal user, hostile HTML
	// included: it arrives as the very text typed.
	hostile := `hi <img src=x onerror="window.__xss=1"> & <b>bold</b>`
	ann.tick("bob", "term")
	ann.say(hostile)
	term.Out.WaitLine(t, "msg: ann: "+hostile, timeout)
	bob.waitJS("ann's message", fmt.Sprintf(`[...document.querySelectorAll('#log li .text')].some((e) => e.textContent === %s)`, jsString(hostile)))
	imgs := eval[int](bob, `document.querySelectorAll('#log img, #log b').length`)
	xss := eval[bool](bob, `window.__xss === 1`)
	if imgs != 0 || xss {
		t.Fatalf("hostile text became markup: %d elements, handler ran: %v", imgs, xss)
	}
	srv.Out.WaitLine(t, "msg: ann", timeout)

	// The terminal user writes to both browser users.
	term.Send(t, "msg 2 ann bob hello from the terminal")
	for _, tb := range []*tab{ann, bob} {
		tb.waitJS("term's message", `[...document.querySelectorAll('#log li')].some((li) => li.textContent.includes('term') && li.textContent.includes('hello from the terminal'))`)
	}

	// Browser -> terminal with the file picker: 3 MiB, streamed in slices,
	// and a name with a space, sent as the protocol allows.
	up := randomBytes(1, 3<<20+5)
	upPath := writeFile(t, t.TempDir(), "up load.bin", up)
	ann.tick("term")
	ann.run(chromedp.SetUploadFiles(chromedp.ID("file"), []string{upPath}))
	term.Out.WaitLine(t, "file: ann: up_load.bin", timeout)
	sameFile(t, filepath.Join(dir, "term_up_load.bin"), up)
	ann.waitJS("the sent mark", `[...document.querySelectorAll('#log li.outgoing')].some((li) => li.textContent.includes('up_load.bin') && li.textContent.includes('— sent'))`)

	// Browser -> terminal by drag and drop.
	eval[any](ann, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File(['dropped bytes\n'], 'dropped.txt'));
		document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
	})()`)
	term.Out.WaitLine(t, "file: ann: dropped.txt", timeout)
	sameFile(t, filepath.Join(dir, "term_dropped.txt"), []byte("dropped bytes\n"))

	// Terminal -> browser: a large file (chunked) saved by the browser as
	// <user>_<filename>, byte-identical, and a small one with a hostile
	// name, shown as text.
	down := randomBytes(2, 2<<20+3)
	downPath := writeFile(t, t.TempDir(), "down.bin", down)
	hostileName := `<img_src=x_onerror=alert(1)>.txt`
	hostilePath := writeFile(t, t.TempDir(), hostileName, []byte("tiny"))
	term.Send(t, "file 1 bob "+downPath)
	term.Send(t, "file 1 bob "+hostilePath)
	downloads := t.TempDir()
	got := bob.download(downloads, "bob_down.bin")
	if !bytes.Equal(got, down) {
		t.Fatalf("browser saved %d bytes, want the %d sent", len(got), len(down))
	}
	bob.waitJS("the hostile filename's link", fmt.Sprintf(`[...document.querySelectorAll('#log a.download')].some((a) => a.download === %s)`, jsString("bob_"+hostileName)))
	if eval[int](bob, `document.querySelectorAll('#log img').length`) != 0 {
		t.Fatalf("a filename became markup")
	}

	phoneLayout(t, bob)

	// The server goes away: both pages say so.
	if code := srv.Stop(t, timeout); code != 0 {
		t.Errorf("the server exited %d on SIGTERM", code)
	}
	for _, tb := range []*tab{ann, bob} {
		tb.waitJS("the lost-connection banner", `!document.getElementById('banner').hidden && document.getElementById('banner-text').textContent.includes('connection to the server lost')`)
		if !eval[bool](tb, `document.getElementById('send').disabled`) {
			t.Errorf("the send button still works after the server went away")
		}
	}
}

// download clicks the link that saves name and returns the saved bytes.
func (tb *tab) download(dir, name string) []byte {
	tb.t.Helper()
	link := fmt.Sprintf(`#log a.download[download=%s]`, jsString(name))
	tb.waitJS("the link to "+name, fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(link)))
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	tb.run(
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			events := true
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior:      browser.SetDownloadBehaviorBehaviorAllow,
				DownloadPath:  dir,
				EventsEnabled: &events,
			})
			return err
		}),
		chromedp.Click(chromedp.CSS(link)),
	)
	for ev, err := range progress {
		if err != nil {
			tb.t.Fatalf("download of %s: %v", name, err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			tb.t.Fatalf("download of %s canceled", name)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		entries, _ := os.ReadDir(dir)
		tb.t.Fatalf("%v; the folder holds %v", err, entries)
	}
	return b
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, differing from the %d sent", path, len(got), len(want))
	}
}

// phoneLayout checks that tb's page at phone width needs no sideways
// scrolling.
func phoneLayout(t *testing.T, tb *tab) {
	t.Helper()
	tb.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	tb.waitJS("the phone layout", `document.documentElement.clientWidth === 390`)
	if eval[bool](tb, `document.documentElement.scrollWidth > document.documentElement.clientWidth`) {
		t.Errorf("at phone width the page scrolls sideways")
	}
}

// TestBrowserKeyboard: the page can be used with the keyboard alone: the
// name field has the focus, Tab moves through the user list, Space ticks a
// user, Enter sends, and Enter on Leave leaves.
func TestBrowserKeyboard(t *testing.T) {
	srv, b, term, _ := withTerminal(t, "term")

	kim := openTab(t, b, srv.pageURL)
	// The name field has the focus from the start.
	kim.run(chromedp.KeyEvent("kim"), chromedp.KeyEvent("\r"))
	kim.joined("kim")
	kim.waitJS("term in the list", hasUser("term"))
	focused := eval[string](kim, `document.activeElement.id`)
	if focused != "text" {
		t.Fatalf("after joining the focus is on %q, want the message box", focused)
	}
	// Tab from the first box of the list reaches term's.
	kim.run(chromedp.Focus(chromedp.CSS(`#users input[data-user="kim"]`)))
	for range 4 {
		focused = eval[string](kim, `document.activeElement.dataset.user || document.activeElement.id`)
		if focused == "term" {
			break
		}
		kim.run(chromedp.KeyEvent("\t"))
	}
	if focused != "term" {
		t.Fatalf("Tab never reached term's box (focus on %q)", focused)
	}
	kim.run(chromedp.KeyEvent(" "))
	if to := eval[string](kim, `document.getElementById('to').textContent`); to != "term" {
		t.Fatalf("To: %q after Space on term's box", to)
	}
	kim.run(chromedp.Focus(chromedp.ID("text")), chromedp.KeyEvent("typed by keys"), chromedp.KeyEvent("\r"))
	term.Out.WaitLine(t, "msg: kim: typed by keys", timeout)

	texts := kim.logTexts()
	if !slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, "typed by keys") }) {
		t.Errorf("the sent message is not in the log: %q", texts)
	}

	// Leave: the page sends disconnect, as quit does.
	kim.run(chromedp.Focus(chromedp.ID("leave")), chromedp.KeyEvent("\r"))
	srv.Out.WaitLine(t, "disconnected: kim", timeout)
	kim.waitJS("the left banner", `!document.getElementById('banner').hidden && document.getElementById('banner-text').textContent === 'You left the chat.'`)
}

// The page keeps its user list by the online and presence extensions,
// not by asking: it learns who is online as it joins, a user who joins or
// leaves shows at once, and the server prints no request_users_list line
// for it, a command nobody typed (it printed one at every join).
func TestBrowserPresence(t *testing.T) {
	srv, b, sam, dir := withTerminal(t, "sam")
	ann := joinTab(t, b, srv.pageURL, "ann")
	ann.waitJS("sam in the list from the join", hasUser("sam"))
	const asked = 0

	tom := srv.terminal(t, "tom", dir)
	ann.waitJS("tom in the list", hasUser("tom"))
	tom.Send(t, "quit")
	srv.Out.WaitLine(t, "disconnected: tom", timeout)
	ann.waitJS("tom gone from the list", "!"+hasUser("tom"))
	if now := countLines(srv.Out, "request_users_list: ann"); now != asked {
		t.Fatalf("the page asked for the list %d times: it should have been told", now-asked)
	}
	sam.Send(t, "quit")
}

// countLines returns how many lines of l are want.
func countLines(l *testbin.Lines, want string) int {
	return l.Count(func(s string) bool { return s == want })
}
