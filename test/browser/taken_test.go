package browser

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// The taken feature in the page (issue 22; docs/WEB.md, "A lost
// connection"): the page numbers its messages and list requests, keeps
// each until the server's count covers it, and on a resume sends again,
// before anything new, exactly those the server did not take.

// wsClientFrame returns how many bytes a browser writes for a binary
// WebSocket message of n bytes: a 2-byte header, the extended length (2
// bytes from 126, 8 from 65,536), the 4-byte mask (RFC 6455, 5.2), then
// the payload, masked.
func wsClientFrame(n int) int {
	switch {
	case n < 126:
		return 2 + 4 + n
	case n < 1<<16:
		return 2 + 2 + 4 + n
	}
	return 2 + 8 + 4 + n
}

// sentAgainNotes is the JavaScript count of the page's notices that say
// it sent n messages again after an exact resume.
func sentAgainNotes(n int) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#log li.note')].filter((li) => li.textContent.includes(%s)).length`,
		jsString(fmt.Sprintf("Sent again %d messages you sent that had not reached the server.", n)))
}

// annThroughProxy starts a server, a terminal user term on it, and a
// page that joins as ann through a proxy (to swallow and cut what the
// page sends).
func annThroughProxy(t *testing.T) (*chatServer, *proxy, *testbin.Proc, *tab) {
	t.Helper()
	srv := startServer(t)
	px := newProxy(t, srv.pageURL)
	term := srv.terminal(t, "term", t.TempDir())
	ann := joinTab(t, newBrowser(t), px.url, "ann")
	srv.Out.WaitLine(t, "join: ann", timeout)
	return srv, px, term, ann
}

// TestBrowserSendsAgain (issue 22, taken): the page's connection dies
// without the page knowing it (a proxy swallows what the page writes,
// once from the middle of a frame and once at a frame's edge) while the
// person types five lines; then the proxy cuts it. After the resume
// every line reaches the terminal user once and in order, a line typed
// while the page reconnects goes after those sent again, and the page
// says what it sent again. Without taken the five lines of the first
// round never arrive (the test fails waiting for m006).
func TestBrowserSendsAgain(t *testing.T) {
	needBrowser(t)
	srv, px, term, ann := annThroughProxy(t)
	acks := ann.watchAcks()
	ann.tick("term")
	srv.Out.WaitLine(t, "request_users_list: ann", timeout)

	next := 1
	// typeLines types n lines (m001, m002...) and returns how many bytes
	// the page writes for them.
	typeLines := func(n int) int {
		t.Helper()
		written := 0
		for range n {
			text := fmt.Sprintf("m%03d", next)
			ann.say(text)
			next++
			written += wsClientFrame(len(protocol.AppendMessage(nil, protocol.SendMessage, []string{"term"}, []byte(text))))
		}
		return written
	}
	arrived := 0
	expectArrived := func() {
		t.Helper()
		for ; arrived < next-1; arrived++ {
			term.Out.WaitLine(t, fmt.Sprintf("msg: ann: m%03d", arrived+1), timeout)
		}
	}
	typeLines(5)
	expectArrived()
	// The page has acknowledged what it received (online, the list): its
	// next bytes are the lines typed.
	acks.wait(t, 2)

	rounds := []struct {
		name string
		keep int // bytes of the first line's message that reach the server
	}{
		{"mid-frame", wsClientFrame(0) + len("send_message 11 ")},
		{"frame edge", 0},
	}
	for i, r := range rounds {
		px.SwallowAfter(r.keep)
		written := typeLines(5)
		px.WaitSwallowedBytes(t, written-r.keep) // all five went into the dead connection
		if i == 1 {
			// The page cannot reconnect at once: a line typed meanwhile
			// must go after the five sent again.
			px.Block(true)
		}
		px.Cut()
		back := time.Now() // the page may reconnect from here
		if i == 1 {
			ann.waitJS("the reconnecting status", reconnecting)
			typeLines(1)
			px.Block(false)
			back = time.Now()
		}
		expectArrived()
		t.Logf("%s: the lines sent again arrived %v after the page could reconnect", r.name, time.Since(back).Round(time.Millisecond))
		ann.waitJS("the sent-again notice", fmt.Sprintf(`%s === %d`, sentAgainNotes(5), i+1))
	}
	typeLines(1)
	expectArrived()

	var got []string
	for _, l := range term.Out.Snapshot() {
		if m, ok := strings.CutPrefix(l, "msg: ann: "); ok {
			got = append(got, m)
		}
	}
	if want := numbered(1, next-1); !slices.Equal(got, want) {
		t.Fatalf("term got %q\nwant each once, in order: %q", got, want)
	}
	if n := countLines(srv.Out, "msg: ann"); n != next-1 {
		t.Errorf("the server printed msg: ann %d times, want %d", n, next-1)
	}
	if ann.has("may not have reached") || ann.has("may arrive twice") || ann.has("missed") {
		t.Errorf("the page told of lost or doubled lines: %q", ann.logTexts())
	}
	if n := countLines(srv.Out, "join: ann"); n != 1 {
		t.Errorf("the server printed join: ann %d times", n)
	}
}

// TestBrowserSendsAgainPastTheBound: more is typed into a dead
// connection than the page keeps to send again (1 MiB): seventeen
// messages of 64 KiB. After the resume the fifteen kept arrive once, in
// order, and the page says that the two it let go of may not have reached
// anyone, naming them.
func TestBrowserSendsAgainPastTheBound(t *testing.T) {
	needBrowser(t)
	srv, px, term, ann := annThroughProxy(t)
	ann.tick("term")
	srv.Out.WaitLine(t, "request_users_list: ann", timeout)

	const maxText = 65536 // the contract's largest message
	text := func(i int) string { return fmt.Sprintf("L%02d ", i) + strings.Repeat("x", maxText-4) }
	ann.say(text(1))
	srv.Out.WaitLine(t, "msg: ann", timeout)
	px.WaitToClient(t, "received 1 2") // the list request and L01: nothing kept

	const typed = 17 // 17 frames of 65,562 bytes: 15 fit in 1 MiB
	px.SwallowAfter(0)
	written := 0
	for i := 2; i <= typed+1; i++ {
		ann.say(text(i))
		written += wsClientFrame(len(protocol.AppendMessage(nil, protocol.SendMessage, []string{"term"}, []byte(text(i)))))
	}
	px.WaitSwallowedBytes(t, written)
	px.Cut()
	srv.Out.Wait(t, "the 16 messages taken", 1+typed-2, timeout, func(l string) bool { return l == "msg: ann" })
	label := func(i int) string { return fmt.Sprintf(`to term: "L%02d %s…"`, i, strings.Repeat("x", 36)) }
	lost := "2 messages you sent may not have reached anyone (more than the page keeps to send again; send them again if needed): " + label(2) + "; " + label(3)
	ann.waitJS("the notice naming the two let go of", fmt.Sprintf(`[...document.querySelectorAll('#log li.note.bad')].some((li) => li.textContent.includes(%s))`, jsString(lost)))
	ann.waitJS("the sent-again notice", fmt.Sprintf(`%s === 1`, sentAgainNotes(typed-2)))

	want := []string{"L01"}
	for i := 4; i <= typed+1; i++ {
		want = append(want, fmt.Sprintf("L%02d", i))
	}
	term.Out.Wait(t, "the messages sent again", len(want), timeout, func(l string) bool { return strings.HasPrefix(l, "msg: ann: ") })
	var got []string
	for _, l := range term.Out.Snapshot() {
		if m, ok := strings.CutPrefix(l, "msg: ann: "); ok {
			if len(m) != maxText || !strings.HasSuffix(m, strings.Repeat("x", maxText-4)) {
				t.Fatalf("term got a message of %d bytes starting %q", len(m), m[:min(len(m), 8)])
			}
			got = append(got, m[:3])
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("term got %q\nwant each once, in order: %q", got, want)
	}
	if n := countLines(srv.Out, "msg: ann"); n != len(want) {
		t.Errorf("the server printed msg: ann %d times, want %d", n, len(want))
	}
}

// sendLogInput is what sendLogScript takes of a chattest.SendLogCase: the
// terminal client's TestSendLogResume cases, run against the page's
// SendLog, which must behave alike.
type sendLogInput struct {
	Sent  int  `json:"sent"`
	Size  int  `json:"size"`
	Told  int  `json:"told"`
	N     int  `json:"n"`
	Exact bool `json:"exact"`
}

// sendLogResult is what the page's SendLog did in a chattest.SendLogCase.
type sendLogResult struct {
	TookErr   string   // took(told)'s refusal, if any
	Bounded   bool     // within the bounds before the resume
	Again     []string // the labels of the frames sent again
	Lost      int
	Labels    []string
	Next      int
	Pending   int
	AfterErr  string // took(next-1) after the resume: its refusal, if any
	AfterKept int    // frames kept after it
	AfterB    int    // bytes kept after it
}

// sendLogScript runs the cases (a JSON array) against the page's SendLog.
const sendLogScript = `((cases) => {
  const c = globalThis.chatCodec;
  return cases.map((tc) => {
    const l = new c.SendLog();
    for (let i = 1; i <= tc.sent; i++) l.add(new Uint8Array(tc.size), 'l' + i);
    const r = { TookErr: tc.told > 0 ? l.took(tc.told) : '' };
    r.Bounded = !(l.bytes > c.MAX_SENT_BYTES && l.kept.length > 1 || l.kept.length > c.MAX_SENT_FRAMES);
    const res = l.resumeFrom(tc.n, tc.exact);
    Object.assign(r, { Again: res.again.map((f) => f.label), Lost: res.lost, Labels: res.labels, Next: l.next, Pending: l.pending });
    r.AfterErr = l.pending > 0 ? l.took(l.next - 1) : '';
    r.AfterKept = l.pending;
    r.AfterB = l.bytes;
    return r;
  });
})(%s)`

// TestBrowserSendLog: the page's SendLog (codec.js) keeps, lets go of,
// sends again and counts what the terminal client's sendLog does, with
// the same bounds (1 MiB, 4,096 frames): the client's table, run in the
// browser; and its labels and the resumed parser.
func TestBrowserSendLog(t *testing.T) {
	needBrowser(t)
	srv := startServer(t)
	tb := openTab(t, newBrowser(t), srv.pageURL)
	const maxSentBytes, maxSentFrames = 1 << 20, 4096
	if got := eval[[]int](tb, `[globalThis.chatCodec.MAX_SENT_BYTES, globalThis.chatCodec.MAX_SENT_FRAMES]`); !slices.Equal(got, []int{maxSentBytes, maxSentFrames}) {
		t.Fatalf("the page's bounds are %v, the terminal client's %v", got, []int{maxSentBytes, maxSentFrames})
	}
	cases := chattest.SendLogCases(maxSentBytes, maxSentFrames)
	var inputs []sendLogInput
	for _, tc := range cases {
		inputs = append(inputs, sendLogInput{tc.Sent, tc.Size, tc.Told, tc.N, tc.Exact})
	}
	results := eval[[]sendLogResult](tb, fmt.Sprintf(sendLogScript, mustJSON(inputs)))
	for i, tc := range cases {
		r := results[i]
		// The frames sent again are the last sent, in order.
		var again []string
		for j := tc.Sent - tc.Again + 1; j <= tc.Sent; j++ {
			again = append(again, fmt.Sprint("l", j))
		}
		switch {
		case r.TookErr != "" || !r.Bounded:
			t.Errorf("%s: took %d: %q; within the bounds: %v", tc.Name, tc.Told, r.TookErr, r.Bounded)
		case !slices.Equal(r.Again, again) || r.Lost != tc.Lost || !slices.Equal(r.Labels, tc.Labels):
			t.Errorf("%s: again %q, lost %d %q; want %q, %d %q", tc.Name, r.Again, r.Lost, r.Labels, again, tc.Lost, tc.Labels)
		case r.Next != tc.Next || r.Pending != tc.Again+tc.Held:
			t.Errorf("%s: next %d, %d kept; want %d, %d", tc.Name, r.Next, r.Pending, tc.Next, tc.Again+tc.Held)
		case r.AfterErr != "" || r.AfterKept != 0 || r.AfterB != 0:
			// The server's counts from now on are of the new numbering:
			// the frames sent again are let go of as it counts them.
			t.Errorf("%s: took %d after the resume: %q, %d kept (%d bytes)", tc.Name, tc.Next-1, r.AfterErr, r.AfterKept, r.AfterB)
		}
	}

	// Held frames (an exact resumed, not confirmed) are sent again after
	// a later lower bound; a count past what was sent and a stale one
	// (took); labels as the terminal client's; resumed's three forms.
	type other struct {
		HeldAgain []string
		HeldNext  int
		TookPast  string
		TookStale int
		Labels    []string
		Resumed   []struct {
			Missed, Taken int
			Exact, Has    bool
		}
		BadResumed  []bool
		CountFields []int
	}
	got := eval[other](tb, `(() => {
  const c = globalThis.chatCodec;
  const l = new c.SendLog();
  for (let i = 1; i <= 5; i++) l.add(new Uint8Array(10), 'l' + i);
  l.took(1);
  l.resumeFrom(3, true);
  l.took(2);
  const held = l.resumeFrom(0, false).again.map((f) => f.label);
  const m = new c.SendLog();
  for (let i = 1; i <= 4; i++) m.add(new Uint8Array(3), 'l' + i);
  const past = m.took(5);
  m.took(2);
  m.took(1);
  return {
    HeldAgain: held, HeldNext: l.next, TookPast: past, TookStale: m.pending,
    Labels: [
      c.messageLabel(['bob'], 'hi'), c.messageLabel(['bob', 'carol'], 'say "x"'),
      c.messageLabel(['bob'], '\u00e9'.repeat(50)), c.messageLabel(['a', 'b', 'c', 'd', 'e'], 'x'),
    ],
    Resumed: ['0', '3 7', '0 ~2'].map((s) => c.parseResumed(c.enc.encode(s))),
    BadResumed: ['', 'x', '01', '1 ', '1 ~', '1 2 3', '1 ~~2', '1 -2', '1 ' + '9'.repeat(20)].map((s) => c.parseResumed(c.enc.encode(s)) === null),
    CountFields: ['0', '12', '012', '', '1x', '9'.repeat(20)].map(c.parseCount),
  };
})()`)
	if !slices.Equal(got.HeldAgain, []string{"l3", "l4", "l5"}) || got.HeldNext != 4 {
		t.Errorf("resume from ~0 after an exact one sent again %q, next %d; want l3 l4 l5, 4", got.HeldAgain, got.HeldNext)
	}
	if got.TookPast == "" || got.TookStale != 2 {
		t.Errorf("a count past what was sent: %q (want refused); after a stale count %d kept, want 2", got.TookPast, got.TookStale)
	}
	wantLabels := []string{`to bob: "hi"`, `to bob, carol: "say \"x\""`, `to bob: "` + strings.Repeat("é", 40) + `…"`, `to a, b, c and 2 more: "x"`}
	if !slices.Equal(got.Labels, wantLabels) {
		t.Errorf("labels %q, want %q", got.Labels, wantLabels)
	}
	wantResumed := `[{"Missed":0,"Taken":0,"Exact":false,"Has":false},{"Missed":3,"Taken":7,"Exact":true,"Has":true},{"Missed":0,"Taken":2,"Exact":false,"Has":true}]`
	if s := mustJSON(got.Resumed); s != wantResumed {
		t.Errorf("resumed parsed as %s, want %s", s, wantResumed)
	}
	for i, bad := range got.BadResumed {
		if !bad {
			t.Errorf("malformed resumed #%d taken", i)
		}
	}
	if !slices.Equal(got.CountFields, []int{0, 12, -1, -1, -1, -1}) {
		t.Errorf("counts parsed as %v", got.CountFields)
	}
}

// watchTaken starts recording the server's counts of the page's frames
// (received, server to page), as the browser's DevTools report the
// WebSocket messages the page receives. A message may hold several
// frames.
func (tb *tab) watchTaken() *sentAcks {
	tb.t.Helper()
	return watchFrames(tb, network.WebSocketFrameReceived, func(e network.EventWebSocketFrameReceived) *network.WebSocketFrame { return e.Response }, takenRE, "the server said it took")
}

var takenRE = regexp.MustCompile(`received \d+ (\d+)`)

// TestBrowserSendsAgainAfterNodeKilled (issue 22, taken across nodes):
// the page's node stops reading (SIGSTOP) while the person types five
// lines into the connection, and is then killed (SIGKILL). The page
// resumes on another node, which cannot know what the dead node took
// (resumed ~0): the page sends again the five lines no received had
// confirmed, not the five before them, and says that some may arrive
// twice, naming them. Each line reaches the terminal user on another
// node once, in order.
func TestBrowserSendsAgainAfterNodeKilled(t *testing.T) {
	needBrowser(t)
	nodes := clusterWithPages(t, 3)
	b := newBrowser(t)
	term := nodes[1].terminal(t, "term", t.TempDir())
	ann := openTab(t, b, nodes[0].pageURL)
	ann.waitJS("config.json fetched", `performance.getEntriesByName(new URL('config.json', location.href).href).some((e) => e.responseEnd > 0)`)
	taken := ann.watchTaken()
	ann.join("ann")
	ann.joined("ann")
	nodes[0].Out.WaitLine(t, "join: ann", timeout)
	ann.tick("term")
	nodes[0].Out.WaitLine(t, "request_users_list: ann", timeout)

	for _, m := range numbered(1, 5) {
		ann.say(m)
	}
	for _, m := range numbered(1, 5) {
		term.Out.WaitLine(t, "msg: ann: "+m, timeout)
	}
	// Confirmed (committed: the other nodes know of them): the list
	// request and the five lines.
	taken.wait(t, 6)

	if err := nodes[0].Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for _, m := range numbered(6, 10) {
		ann.say(m) // into a connection nobody reads
	}
	if s := eval[string](ann, `document.getElementById('status').textContent`); s != "Online" {
		t.Fatalf("the page's status is %q before the kill: the lines did not go into the connection", s)
	}
	nodes[0].Kill()
	killed := time.Now()
	for _, m := range numbered(6, 10) {
		term.Out.WaitLine(t, "msg: ann: "+m, timeout)
	}
	t.Logf("the five lines arrived %v after the kill", time.Since(killed).Round(time.Millisecond))
	var labels []string
	for _, m := range numbered(6, 10) {
		labels = append(labels, fmt.Sprintf(`to term: "%s"`, m))
	}
	notice := "Sent again 5 messages you sent that the server that failed may not have taken: some may arrive twice: " + strings.Join(labels, "; ")
	ann.waitJS("the notice naming the five", fmt.Sprintf(`[...document.querySelectorAll('#log li.note')].some((li) => li.textContent.includes(%s))`, jsString(notice)))
	ann.say("m011")
	term.Out.WaitLine(t, "msg: ann: m011", timeout)

	var got []string
	for _, l := range term.Out.Snapshot() {
		if m, ok := strings.CutPrefix(l, "msg: ann: "); ok {
			got = append(got, m)
		}
	}
	if want := numbered(1, 11); !slices.Equal(got, want) {
		t.Fatalf("term got %q\nwant each once, in order: %q", got, want)
	}
	moved := regexp.MustCompile(`msg="resumed a session from another node".*user=ann`)
	if nodes[1].Errs.Count(moved.MatchString)+nodes[2].Errs.Count(moved.MatchString) != 1 {
		t.Errorf("no node (or two) says it resumed ann's session from another node")
	}
}
