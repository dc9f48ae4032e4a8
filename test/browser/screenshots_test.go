package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserScreenshots writes docs/web-desktop.png and docs/web-phone.png
// from a real conversation, when UPDATE_SCREENSHOTS is set: alice (at
// desktop width) and bob (at phone width) in browsers, carol in a
// terminal. They showed the hostile strings of TestBrowserSession before
// (issue 23 item 19).
func TestBrowserScreenshots(t *testing.T) {
	if os.Getenv("UPDATE_SCREENSHOTS") == "" {
		t.Skip("UPDATE_SCREENSHOTS=1 writes the screenshots in docs/")
	}
	needBrowser(t)
	srv := startServer(t)
	b := newBrowser(t)
	dir := t.TempDir()

	alice := joinTab(t, b, srv.pageURL, "alice")
	bob := openTab(t, b, srv.pageURL)
	bob.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	bob.join("bob")
	bob.joined("bob")
	carol := srv.terminal(t, "carol", dir)

	shown := func(tb *tab, text string) {
		t.Helper()
		tb.waitJS(fmt.Sprintf("%q on the page", text), fmt.Sprintf(`[...document.querySelectorAll('#log li')].some((li) => li.textContent.includes(%s))`, jsString(text)))
	}
	carol.Send(t, "msg 2 alice bob Morning! Is the release still on for Friday?")
	shown(alice, "Is the release still on for Friday?")
	shown(bob, "Is the release still on for Friday?")

	alice.tick("bob", "carol")
	alice.say("Yes, if the last tests pass today. Sending you the notes.")
	carol.Out.WaitLine(t, "msg: alice: Yes, if the last tests pass today. Sending you the notes.", timeout)
	notes := writeFile(t, t.TempDir(), "release-notes.md", []byte("# Release 2.1\n\n- cluster mode\n- the web client\n"))
	alice.run(chromedp.SetUploadFiles(chromedp.ID("file"), []string{notes}))
	carol.Out.WaitLine(t, "file: alice: release-notes.md", timeout)
	alice.waitJS("the sent mark", `[...document.querySelectorAll('#log li.outgoing')].some((li) => li.textContent.includes('release-notes.md') && li.textContent.includes('— sent'))`)
	bob.waitJS("the notes' link", `[...document.querySelectorAll('#log a.download')].some((a) => a.download === 'bob_release-notes.md')`)

	bob.tick("alice", "carol")
	bob.say("Got them, thanks! I'll try the phone build tonight.")
	shown(alice, "I'll try the phone build tonight.")
	carol.Send(t, "msg 2 alice bob Great. See you at the standup.")
	shown(alice, "See you at the standup.")
	shown(bob, "See you at the standup.")
	phoneLayout(t, bob)

	docs, err := filepath.Abs("../../docs")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		tb   *tab
		file string
	}{{alice, "web-desktop.png"}, {bob, "web-phone.png"}} {
		eval[any](s.tb, `document.activeElement.blur()`) // no focus ring in the picture
		ctx, cancel := context.WithTimeout(s.tb.ctx, timeout)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(docs, s.file), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	carol.Send(t, "quit")
	srv.Out.WaitLine(t, "disconnected: carol", timeout)
}
