package browser

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/testbin"
)

// clusterWithPages starts k nodes (n1...) of a cluster, each serving the
// page, each told the others' page URLs (--http-peers), and waits until
// every node has heard every other. It returns the nodes with their
// chat ports and page URLs.
func clusterWithPages(t *testing.T, k int) []*chatServer {
	t.Helper()
	type ports struct{ chat, route, http int }
	ps := make([]ports, k)
	for i := range ps {
		ps[i] = ports{testbin.FreePort(t), testbin.FreePort(t), testbin.FreePort(t)}
	}
	dir := t.TempDir()
	nodes := make([]*chatServer, k)
	for i, p := range ps {
		var routes, pages []string
		for j, o := range ps {
			if j != i {
				routes = append(routes, fmt.Sprint("127.0.0.1:", o.route))
				pages = append(pages, fmt.Sprintf("http://127.0.0.1:%d/", o.http))
			}
		}
		name := fmt.Sprint("n", i+1)
		proc := start(t, serverBin, "-a", "127.0.0.1", "-p", strconv.Itoa(p.chat), "--node", name,
			"--http-addr", fmt.Sprint("127.0.0.1:", p.http), "--http-peers", strings.Join(pages, ","),
			"--cluster-listen", fmt.Sprint("127.0.0.1:", p.route), "--cluster-peers", strings.Join(routes, ","),
			"--cluster-dir", filepath.Join(dir, name), "--cluster-insecure", "--log-level", "info")
		nodes[i] = &chatServer{Proc: proc, port: strconv.Itoa(p.chat), pageURL: fmt.Sprintf("http://127.0.0.1:%d/", p.http)}
	}
	for i, n := range nodes {
		n.Errs.WaitMatch(t, webRE, timeout)
		for j := range nodes {
			if j != i {
				n.Errs.WaitMatch(t, regexp.MustCompile(fmt.Sprintf(`msg="node heard".* peer=n%d .*state=up`, j+1)), 60*timeout/30)
			}
		}
	}
	return nodes
}

// TestBrowserResumeOnAnotherNode (issue 22, second part): the page's node
// is killed (SIGKILL) while messages flow to it from a user on another
// node. The page says it is reconnecting, resumes on another node of the
// cluster (its --http-peers, told in config.json), and shows every
// message once and in order: those in flight to the dead node come from
// the node that sent them (the cursor the page resumed with).
func TestBrowserResumeOnAnotherNode(t *testing.T) {
	needBrowser(t)
	nodes := clusterWithPages(t, 3)
	b := newBrowser(t)
	term := nodes[1].terminal(t, "term", t.TempDir())
	nodes[1].Out.WaitLine(t, "join: term", timeout)
	ann := openTab(t, b, nodes[0].pageURL)
	ann.waitJS("config.json fetched", `performance.getEntriesByName(new URL('config.json', location.href).href).some((e) => e.responseEnd > 0)`)
	ann.join("ann")
	ann.joined("ann")
	nodes[0].Out.WaitLine(t, "join: ann", timeout)
	ann.tick("term")
	const before, after = 10, 20
	for _, m := range numbered(1, before) {
		term.Send(t, "msg 1 ann "+m)
	}
	ann.waitMessages(before)
	nodes[0].Kill()
	killed := time.Now()
	for _, m := range numbered(before+1, before+after) {
		term.Send(t, "msg 1 ann "+m)
	}
	all := before + after
	ann.waitMessages(all)
	t.Logf("all %d messages shown %v after the kill", all, time.Since(killed).Round(time.Millisecond))
	ann.waitJS("the online status", `document.getElementById('status').textContent === 'Online' && document.getElementById('banner').hidden`)
	want := numbered(1, all)
	if got := ann.received(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the page shows %d messages\n%q\nwant each once in order\n%q", len(got), got, want)
	}
	moved := regexp.MustCompile(`msg="resumed a session from another node".*user=ann.* missed=0`)
	if nodes[1].Errs.Count(moved.MatchString)+nodes[2].Errs.Count(moved.MatchString) != 1 {
		t.Errorf("no node (or two) says it resumed ann's session from another node")
	}
	if ann.has("missed") {
		t.Errorf("the page says messages were missed: %q", ann.logTexts())
	}
}
