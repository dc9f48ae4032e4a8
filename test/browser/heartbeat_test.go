package browser

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
)

// The heartbeat extension in the page (issue 22): the page pings after a
// third of the server's --heartbeat-timeout (told in config.json)
// without a byte from the server, and takes the connection as lost, and
// resumes, after all of it.

// hbTimeout is the server's heartbeat timeout in these tests.
const hbTimeout = 900 * time.Millisecond

// heartbeatSetup starts a server with a short heartbeat timeout, a
// black-hole proxy to its page, a terminal user term and a page joined
// as ann through the proxy, with term ticked.
func heartbeatSetup(t *testing.T, args ...string) (*chatServer, *chattest.Proxy, *tab, func(string)) {
	t.Helper()
	needBrowser(t)
	srv := startServer(t, append([]string{"--heartbeat-timeout", hbTimeout.String()}, args...)...)
	u, err := url.Parse(srv.pageURL)
	if err != nil {
		t.Fatal(err)
	}
	hp := chattest.NewProxy(t, u.Host, 0)
	b := newBrowser(t)
	term := srv.terminal(t, "term", t.TempDir())
	srv.Out.WaitLine(t, "join: term", timeout)
	ann := openTab(t, b, "http://"+hp.Addr()+"/")
	// The page learns the timeout from config.json, fetched as it loads.
	ann.waitJS("config.json fetched", `performance.getEntriesByName(new URL('config.json', location.href).href).some((e) => e.responseEnd > 0)`)
	ann.join("ann")
	ann.joined("ann")
	srv.Out.WaitLine(t, "join: ann", timeout)
	ann.tick("term")
	srv.Out.WaitLine(t, "request_users_list: ann", timeout)
	return srv, hp, ann, func(line string) { term.Send(t, line) }
}

// TestBrowserHeartbeatBlackhole: the page's connection turns into a
// black hole (no close, no reset) while messages flow to it. The page
// sees the silence, says it is reconnecting, resumes through a new
// connection, and shows every message once and in order. Without the
// heartbeat it would wait on the dead connection for good (the test
// then fails: the messages after the black hole never show).
func TestBrowserHeartbeatBlackhole(t *testing.T) {
	srv, hp, ann, term := heartbeatSetup(t)
	const before, during = 10, 20
	for _, m := range numbered(1, before) {
		term("msg 1 ann " + m)
	}
	ann.waitMessages(before)
	// The resume through a new connection can be quick enough that the
	// reconnecting status shows for less than a poll (CI, load 9: the
	// page resumed 1 s after the black hole and the poll never saw it):
	// the page is made to note that it showed it.
	eval[bool](ann, `(() => {
		window.sawReconnecting = false;
		new MutationObserver(() => { if (`+reconnecting+`) window.sawReconnecting = true; })
			.observe(document.getElementById('status'), {childList: true, characterData: true, subtree: true, attributes: true});
		return true;
	})()`)
	if n := hp.Blackhole(); n == 0 {
		t.Fatal("the proxy carried no connection")
	}
	holed := time.Now()
	for _, m := range numbered(before+1, before+during) {
		term("msg 1 ann " + m)
	}
	ann.waitJS("the reconnecting status shown", `window.sawReconnecting === true`)
	srv.Errs.WaitMatch(t, regexp.MustCompile(`msg=resumed .*user=ann.* missed=0`), timeout)
	ann.waitJS("the online status", `document.getElementById('status').textContent === 'Online'`)
	all := before + during
	ann.waitMessages(all)
	t.Logf("all %d messages shown %v after the black hole", all, time.Since(holed).Round(time.Millisecond))
	want := numbered(1, all)
	if got := ann.received(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the page shows %d messages\n%q\nwant each once in order\n%q", len(got), got, want)
	}
	if n := countLines(srv.Out, "join: ann"); n != 1 {
		t.Errorf("the server printed join: ann %d times", n)
	}
	for _, l := range srv.Out.Snapshot() {
		if strings.HasPrefix(l, "disconnected:") {
			t.Errorf("the server printed %q", l)
		}
	}
}

// TestBrowserHeartbeatIdle: a page and a server with nothing to say to
// each other for several heartbeat timeouts: the page's pings (and its
// answers to the server's) keep the connection, which neither side takes
// as lost.
func TestBrowserHeartbeatIdle(t *testing.T) {
	srv, _, ann, _ := heartbeatSetup(t)
	// Nothing is waited for here but time itself: four timeouts.
	start := eval[float64](ann, `performance.now()`)
	ann.waitJS("four heartbeat timeouts", fmt.Sprintf(`performance.now() > %f`, start+float64(4*hbTimeout.Milliseconds())))
	ann.waitJS("the online status", `document.getElementById('status').textContent === 'Online'`)
	for _, l := range srv.Errs.Snapshot() {
		if strings.Contains(l, "user=ann") && (strings.Contains(l, "heartbeat") || strings.Contains(l, "resume") || strings.Contains(l, "connection closed")) {
			t.Errorf("server log: %s", l)
		}
	}
}
