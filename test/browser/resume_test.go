package browser

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/gochat/chat/internal/chattest"
)

// proxy is a TCP proxy between the browser and the server's HTTP port,
// which the test cuts as a network or a proxy restart would: both sides'
// sockets closed, no WebSocket close frame. url is the page through it.
type proxy struct {
	*chattest.Proxy
	url string
}

// newProxy starts a proxy to the server whose page is at pageURL. It
// ends with t.
func newProxy(t *testing.T, pageURL string) *proxy {
	t.Helper()
	p := chattest.NewProxy(t, hostOf(pageURL), 0)
	return &proxy{Proxy: p, url: "http://" + p.Addr() + "/"}
}

// retarget sends new connections to the server whose page is at pageURL.
func (px *proxy) retarget(pageURL string) { px.Retarget(hostOf(pageURL)) }

// hostOf returns the host:port of a page's URL.
func hostOf(pageURL string) string {
	u, err := url.Parse(pageURL)
	if err != nil {
		panic(err)
	}
	return u.Host
}

// reconnecting is the JavaScript test for the page's reconnecting state:
// said in the status, which is a live region.
const reconnecting = `(() => {
	const s = document.getElementById('status');
	return /reconnecting/i.test(s.textContent) && s.getAttribute('aria-live') === 'polite' && s.getAttribute('role') === 'status';
})()`

// received returns the texts of the messages the page received, in order.
func (tb *tab) received() []string {
	tb.t.Helper()
	return eval[[]string](tb, `[...document.querySelectorAll('#log li.msg .text')].map((e) => e.textContent)`)
}

// resumeSetup starts a server with args, a proxy to it, a terminal user
// term and a page joined as ann through the proxy, with term ticked.
func resumeSetup(t *testing.T, args ...string) (*chatServer, *proxy, *tab, func(string)) {
	t.Helper()
	needBrowser(t)
	srv := startServer(t, args...)
	px := newProxy(t, srv.pageURL)
	b := newBrowser(t)
	term := srv.terminal(t, "term", t.TempDir())
	srv.Out.WaitLine(t, "join: term", timeout)
	ann := joinTab(t, b, px.url, "ann")
	srv.Out.WaitLine(t, "join: ann", timeout)
	ann.tick("term")
	// The answer to the list tick asked for is queued before whatever
	// term sends from here: the server prints the asking just before it
	// queues the answer (handleList), and a line given to term reaches
	// the server milliseconds later, through term's client.
	srv.Out.WaitLine(t, "request_users_list: ann", timeout)
	return srv, px, ann, func(line string) { term.Send(t, line) }
}

// waitMessages waits until the page shows n messages from term.
func (tb *tab) waitMessages(n int) {
	tb.t.Helper()
	tb.waitJS(fmt.Sprintf("%d messages", n), fmt.Sprintf(`document.querySelectorAll('#log li.msg').length >= %d`, n))
}

func numbered(from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprintf("m%03d", i))
	}
	return s
}

// TestBrowserResume (issue 22): the page's connection is cut while
// messages flow to it; the page keeps its conversation, says it is
// reconnecting, resumes, and shows every message once and in order; a
// line typed meanwhile goes after the resume. The server sees no second
// join and no leave.
func TestBrowserResume(t *testing.T) {
	srv, px, ann, term := resumeSetup(t)
	const before, during, after = 30, 20, 10
	for _, m := range numbered(1, before) {
		term("msg 1 ann " + m)
	}
	ann.waitMessages(5)
	px.Block(true)
	if n := px.Cut(); n == 0 {
		t.Fatal("the proxy carried no connection to cut")
	}
	ann.waitJS("the reconnecting status", reconnecting)
	srv.Errs.WaitMatch(t, regexp.MustCompile(`connection lost; the session waits for a resume.*user=ann`), timeout)
	for _, m := range numbered(before+1, before+during) {
		term("msg 1 ann " + m)
	}
	ann.say("typed while away")
	ann.waitJS("the typed line shown as waiting", `(() => {
		const li = [...document.querySelectorAll('#log li.mine')].find((li) => li.textContent.includes('typed while away'));
		return li && li.classList.contains('queued') && li.textContent.includes('waiting');
	})()`)
	if !ann.has("m001") {
		t.Fatalf("the conversation was not kept while reconnecting: %q", ann.logTexts())
	}
	px.Block(false)
	srv.Errs.WaitMatch(t, regexp.MustCompile(`msg=resumed .*user=ann.* missed=0`), timeout)
	ann.waitJS("the online status", `document.getElementById('status').textContent === 'Online'`)
	srv.Out.WaitLine(t, "msg: ann", timeout) // the line typed while away, sent after the resume
	ann.waitJS("the typed line shown as sent", `(() => {
		const li = [...document.querySelectorAll('#log li.mine')].find((li) => li.textContent.includes('typed while away'));
		return li && !li.classList.contains('queued') && li.textContent.includes('sent');
	})()`)
	for _, m := range numbered(before+during+1, before+during+after) {
		term("msg 1 ann " + m)
	}
	all := before + during + after
	ann.waitMessages(all)
	want := numbered(1, all)
	if got := ann.received(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the page shows %d messages\n%q\nwant each once in order\n%q", len(got), got, want)
	}
	if eval[bool](ann, `!document.getElementById('banner').hidden`) {
		t.Errorf("a banner shows after the resume: %q", eval[string](ann, `document.getElementById('banner-text').textContent`))
	}
	if n := countLines(srv.Out, "join: ann"); n != 1 {
		t.Errorf("the server printed join: ann %d times", n)
	}
	for _, l := range srv.Out.Snapshot() {
		if strings.HasPrefix(l, "disconnected:") {
			t.Errorf("the server printed %q", l)
		}
	}
	if got := countLines(srv.Out, "msg: ann"); got != 1 {
		t.Errorf("the server printed msg: ann %d times, want once (the line typed while away)", got)
	}
}

// has reports whether the log shows text in an entry.
func (tb *tab) has(text string) bool {
	tb.t.Helper()
	return eval[bool](tb, fmt.Sprintf(`[...document.querySelectorAll('#log li')].some((li) => li.textContent.includes(%s))`, jsString(text)))
}

// TestBrowserResumeMissed (issue 22, no silent loss): more is sent while
// the page is away than the server keeps; after the resume the page says
// how many it missed, and what it shows plus that number is what was
// sent.
func TestBrowserResumeMissed(t *testing.T) {
	srv, px, ann, term := resumeSetup(t, "--resume-buffer", "512")
	for _, m := range numbered(1, 3) {
		term("msg 1 ann " + m)
	}
	ann.waitMessages(3)
	px.Block(true)
	px.Cut()
	ann.waitJS("the reconnecting status", reconnecting)
	srv.Errs.WaitMatch(t, regexp.MustCompile(`connection lost; the session waits for a resume.*user=ann`), timeout)
	const sent = 60
	for _, m := range numbered(4, sent) {
		term("msg 1 ann " + m)
	}
	// The server's stdout shows each message as it takes it: all are in
	// the session's buffer (or dropped from it) before the page is back.
	srv.Out.Wait(t, "all the messages taken", sent, timeout, func(l string) bool { return l == "msg: term" || strings.HasPrefix(l, "msg: term ") })
	px.Block(false)
	m := srv.Errs.WaitMatch(t, regexp.MustCompile(`msg=resumed .*user=ann.* missed=(\d+)`), timeout)
	missed, _ := strconv.Atoi(m[1])
	if missed == 0 {
		t.Fatalf("the server reports nothing missed: the test sent too little for --resume-buffer 512")
	}
	notice := fmt.Sprintf("missed %d messages", missed)
	ann.waitJS("the missed notice", fmt.Sprintf(`[...document.querySelectorAll('#log li.note')].some((li) => li.textContent.includes(%s))`, jsString(notice)))
	ann.waitMessages(sent - missed)
	got := ann.received()
	if len(got)+missed != sent {
		t.Fatalf("the page shows %d messages and says %d missed, of %d sent: %q", len(got), missed, sent, got)
	}
	// Those shown are in order, once each: the first three, then the
	// newest the server kept.
	want := append(numbered(1, 3), numbered(3+missed+1, sent)...)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the page shows\n%q\nwant\n%q", got, want)
	}
}

// TestBrowserResumeFailed (issue 22): the server restarts while the page
// is away; the new one refuses the resume, and the page shows the
// disconnected state at once, not after the window (5 minutes here).
func TestBrowserResumeFailed(t *testing.T) {
	srv, px, ann, term := resumeSetup(t, "--resume-window", "5m")
	term("msg 1 ann before the restart")
	ann.waitMessages(1)
	srv.Kill()
	ann.waitJS("the reconnecting status", reconnecting)
	srv2 := startServer(t)
	px.retarget(srv2.pageURL)
	srv2.Errs.WaitMatch(t, regexp.MustCompile(`resume refused.*as=ann`), timeout)
	ann.waitJS("the disconnected banner", `!document.getElementById('banner').hidden && document.getElementById('banner-text').textContent.includes('could not be resumed')`)
	offlineControls(t, ann, "after a refused resume")
	if !ann.has("before the restart") {
		t.Errorf("the conversation is gone: %q", ann.logTexts())
	}
	for _, l := range srv2.Out.Snapshot() {
		if strings.Contains(l, "ann") {
			t.Errorf("the new server printed %q", l)
		}
	}
}

// TestBrowserResumeWindowPasses (issue 22): no server takes the page back
// within the window: the page shows the disconnected state, and the
// server ends the session then (its one disconnected: line).
func TestBrowserResumeWindowPasses(t *testing.T) {
	srv, px, ann, _ := resumeSetup(t, "--resume-window", "2s")
	px.Block(true)
	px.Cut()
	ann.waitJS("the reconnecting status", reconnecting)
	ann.waitJS("the disconnected banner", `!document.getElementById('banner').hidden && document.getElementById('banner-text').textContent.includes('connection to the server lost')`)
	offlineControls(t, ann, "after the window passed")
	srv.Out.WaitLine(t, "disconnected: ann", timeout)
	if n := countLines(srv.Out, "disconnected: ann"); n != 1 {
		t.Errorf("the server printed disconnected: ann %d times", n)
	}
}

// TestBrowserClosedPageLeaves: a page closed (or reloaded) cannot resume,
// so it quits: the server ends the session at once, not when the resume
// window (5 minutes here) passes, and the name is free again.
func TestBrowserClosedPageLeaves(t *testing.T) {
	srv, _, ann, _ := resumeSetup(t, "--resume-window", "5m")
	ctx, cancel := context.WithTimeout(ann.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.Close, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatalf("closing the page: %v", err)
	}
	srv.Out.WaitLine(t, "disconnected: ann", timeout)
}

// sentAcks records the received frames the page sends, as the browser's
// DevTools report its WebSocket messages (the proxy sees them masked).
type sentAcks struct {
	mu      sync.Mutex
	values  []uint64
	changed chan struct{} // closed and replaced at each value
	what    string        // who counted, for a failure: "the page acknowledged" unless set
}

var receivedRE = regexp.MustCompile(`^received \d+ (\d+)$`)

// watchAcks starts recording the page's received frames. The page sends
// each frame in a message of its own.
func (tb *tab) watchAcks() *sentAcks {
	tb.t.Helper()
	return watchFrames(tb, network.WebSocketFrameSent, func(e network.EventWebSocketFrameSent) *network.WebSocketFrame { return e.Response }, receivedRE, "")
}

// watchFrames starts recording the counts re finds (its first group) in
// the binary WebSocket messages the browser's DevTools report with ev
// (frameOf gives an event's message), what naming who counted for a
// failure.
func watchFrames[E any](tb *tab, ev cdp.Event[E], frameOf func(E) *network.WebSocketFrame, re *regexp.Regexp, what string) *sentAcks {
	tb.t.Helper()
	a := &sentAcks{changed: make(chan struct{}), what: what}
	ctx, cancel := context.WithCancel(tb.ctx)
	events := chromedp.Events(ctx, ev)
	tb.run(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
		return err
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e, err := range events {
			if err != nil {
				return
			}
			f := frameOf(e)
			if f == nil || f.Opcode != 2 {
				continue
			}
			for _, m := range re.FindAllSubmatch(f.PayloadData, -1) {
				n, _ := strconv.ParseUint(string(m[1]), 10, 64)
				a.mu.Lock()
				a.values = append(a.values, n)
				close(a.changed)
				a.changed = make(chan struct{})
				a.mu.Unlock()
			}
		}
	}()
	tb.t.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

// wait waits until the page has acknowledged n frames, and returns the
// values acknowledged so far.
func (a *sentAcks) wait(t *testing.T, n uint64) []uint64 {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		values, ch := slices.Clone(a.values), a.changed
		a.mu.Unlock()
		if len(values) > 0 && values[len(values)-1] >= n {
			return values
		}
		select {
		case <-ch:
		case <-deadline.C:
			what := a.what
			if what == "" {
				what = "the page acknowledged"
			}
			t.Fatalf("%s %v, never %d", what, values, n)
		}
	}
}

// TestBrowserAcknowledges (issue 22): the page acknowledges what it
// receives as the terminal client does: never more than 64 counted frames
// at a time, and all of them once they stop coming (200 ms after the
// first unacknowledged); the count it resumes with is the server's.
func TestBrowserAcknowledges(t *testing.T) {
	srv, px, ann, term := resumeSetup(t)
	acks := ann.watchAcks()
	// Nothing on its way to the page: the answer to the list was queued
	// before this message (resumeSetup), which the page shows.
	term("msg 1 ann sync")
	ann.waitMessages(1)
	// A cut and resume tells the page's count (the server logs the count
	// a resume presents, and refuses one past what it sent): online, the
	// list, the message.
	px.Cut()
	m := srv.Errs.WaitMatch(t, regexp.MustCompile(`msg=resumed .*user=ann received=(\d+) missed=0`), timeout)
	base, _ := strconv.ParseUint(m[1], 10, 64)
	if base != 3 {
		t.Fatalf("the page resumed having counted %d frames; it received 3 (online, response_users_list, forward_message)", base)
	}
	ann.waitJS("the online status", `document.getElementById('status').textContent === 'Online'`)
	const sent = 150
	for _, m := range numbered(1, sent) {
		term("msg 1 ann " + m)
	}
	ann.waitMessages(1 + sent)
	values := acks.wait(t, base+sent)
	prev := base
	for _, v := range values {
		if v <= base {
			continue // before the resume
		}
		if v <= prev || v-prev > 64 {
			t.Fatalf("acknowledgements %v after the resume at %d: each must be above the last by 1 to 64", values, base)
		}
		prev = v
	}
	if got := values[len(values)-1]; got != base+sent {
		t.Fatalf("the page acknowledged %d, received %d", got, base+sent)
	}
}
