package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gochat/chat/internal/testbin"
)

// timeout bounds every wait on an event: generous, for CI's loaded
// 2-core machine.
const timeout = 30 * time.Second

// start starts bin with args, its output collected (testbin.Start).
func start(t *testing.T, bin string, args ...string) *testbin.Proc {
	t.Helper()
	return testbin.Start(t, filepath.Base(bin), exec.Command(bin, args...))
}

// chatServer is gochatd with the web client on.
type chatServer struct {
	*testbin.Proc
	port    string // the TCP port
	pageURL string // http://127.0.0.1:PORT/
}

var (
	listeningRE = regexp.MustCompile(`msg=listening addr=127\.0\.0\.1:(\d+)`)
	webRE       = regexp.MustCompile(`msg="serving the web client" addr=(http://127\.0\.0\.1:\d+/)`)
)

func startServer(t *testing.T, args ...string) *chatServer {
	t.Helper()
	p := start(t, serverBin, append([]string{"-a", "127.0.0.1", "-p", "0", "--http-addr", "127.0.0.1:0"}, args...)...)
	port := p.Errs.WaitMatch(t, listeningRE, timeout)[1]
	page := p.Errs.WaitMatch(t, webRE, timeout)[1]
	return &chatServer{Proc: p, port: port, pageURL: page}
}

// terminal starts the terminal client as name, saving files in dir, and
// waits for the server's join line.
func (s *chatServer) terminal(t *testing.T, name, dir string) *testbin.Proc {
	t.Helper()
	p := start(t, clientBin, "-a", "127.0.0.1", "-p", s.port, "-u", name, "--download-dir", dir)
	s.Out.WaitLine(t, "join: "+name, timeout)
	return p
}

// withTerminal starts a browser and a server with a terminal user, name,
// who saves files into dir.
func withTerminal(t *testing.T, name string) (srv *chatServer, b context.Context, term *testbin.Proc, dir string) {
	t.Helper()
	needBrowser(t)
	srv = startServer(t)
	b = newBrowser(t)
	dir = t.TempDir()
	return srv, b, srv.terminal(t, name, dir), dir
}

// chromiumSwitches are the switches, each set to true, that newBrowser
// starts Chromium with.
var chromiumSwitches = []string{
	"headless", "no-sandbox", "disable-gpu", "disable-quic",
	"no-first-run", "no-default-browser-check", "disable-background-networking", "disable-component-update",
	"disable-sync", "disable-dev-shm-usage", "hide-scrollbars", "mute-audio",
}

// newBrowser starts headless Chromium as this machine needs it started,
// with a fresh profile, and returns its context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	for _, f := range chromiumSwitches {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	// Start the browser now, so that a failure shows here.
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("starting %s: %v", chromium, err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// tab is one page of the browser: one browser user.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// openTab opens the page in a new tab of the browser.
func openTab(t *testing.T, browser context.Context, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// The first run opens the tab, which lives as long as the context of
	// that run: so it gets no timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	tb := &tab{t: t, ctx: ctx}
	tb.run(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("name")))
	return tb
}

// run runs actions on the tab within the timeout.
func (tb *tab) run(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// waitJS waits until the JavaScript expression is true on the page.
func (tb *tab) waitJS(what, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[any](expr, chromedp.WithPollingTimeout(timeout))); err != nil {
		state, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		tb.t.Fatalf("waiting for %s (%s): %v; page text:\n%s", what, expr, err, state)
	}
}

// eval returns the value of a JavaScript expression on tb's page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

// joinTab opens the page at url in a new tab of the browser and joins as
// name.
func joinTab(t *testing.T, browser context.Context, url, name string) *tab {
	t.Helper()
	tb := openTab(t, browser, url)
	tb.join(name)
	tb.joined(name)
	return tb
}

// join types name into the join form and submits it.
func (tb *tab) join(name string) {
	tb.t.Helper()
	tb.run(
		chromedp.SetValue(chromedp.ID("name"), name),
		chromedp.Click(chromedp.ID("join")),
	)
}

// joined waits until the chat view shows, with name in the user list.
func (tb *tab) joined(name string) {
	tb.t.Helper()
	tb.waitJS("the chat view", fmt.Sprintf(`!document.getElementById('chat-view').hidden && %s`, hasUser(name)))
}

// hasUser is a JavaScript test for name in the user list.
func hasUser(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#users input')].some((b) => b.dataset.user === %s)`, jsString(name))
}

// tick ticks exactly the given users, refreshing the list until they are
// all in it.
func (tb *tab) tick(names ...string) {
	tb.t.Helper()
	tb.run(chromedp.Click(chromedp.ID("refresh")))
	for _, n := range names {
		tb.waitJS(n+" in the user list", hasUser(n))
	}
	tb.run(chromedp.Click(chromedp.ID("none")))
	// The page renders its user list again whenever a list comes (one
	// may still be on its way from the refresh, or from the page's own
	// timer), so a box found by one call may be gone at the next: find
	// and click it in one evaluation.
	for _, n := range names {
		clicked := eval[bool](tb, fmt.Sprintf(`(() => {
			const box = [...document.querySelectorAll('#users input')].find((b) => b.dataset.user === %s);
			if (box) box.click();
			return !!box;
		})()`, jsString(n)))
		if !clicked {
			tb.t.Fatalf("no box for %s in the user list", n)
		}
	}
	to := eval[string](tb, `document.getElementById('to').textContent`)
	if want := strings.Join(sortedCopy(names), ", "); to != want {
		tb.t.Fatalf("To: %q, want %q", to, want)
	}
}

// say sends a message to the ticked users with the keyboard: the text,
// then Enter.
func (tb *tab) say(text string) {
	tb.t.Helper()
	tb.run(
		chromedp.Focus(chromedp.ID("text")),
		chromedp.SetValue(chromedp.ID("text"), text),
		chromedp.SendKeys(chromedp.ID("text"), "\r"),
	)
	tb.waitJS("the message box to empty", `document.getElementById('text').value === ''`)
}

// logTexts returns the texts of the log's entries.
func (tb *tab) logTexts() []string {
	tb.t.Helper()
	return eval[[]string](tb, `[...document.querySelectorAll('#log li')].map((li) => li.textContent)`)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// jsString quotes s as a JavaScript string literal (and, for ASCII
// names, a CSS one).
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always encodes
	}
	return string(b)
}

// writeFile writes size random bytes to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	path := dir + "/" + name
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
