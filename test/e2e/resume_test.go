package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
)

// Sessions that survive a lost connection (issue 22, slice 1): the real
// client and server, with a TCP proxy between them that the test cuts.

// countMatch returns how many lines of l match re.
func (l *lineLog) countMatch(re *regexp.Regexp) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if re.MatchString(s) {
			n++
		}
	}
	return n
}

// waitMatches waits until n lines of l match re, and returns them.
func (l *lineLog) waitMatches(t testing.TB, re *regexp.Regexp, n int, d time.Duration) []string {
	t.Helper()
	var got []string
	l.await(t, d, fmt.Sprintf("%d lines matching %s", n, re), func() (bool, string) {
		got = got[:0]
		for _, s := range l.lines {
			if re.MatchString(s) {
				got = append(got, s)
			}
		}
		return len(got) >= n, ""
	})
	return got
}

var resumedLine = regexp.MustCompile(`^client: connection lost; resumed on 127\.0\.0\.1:\d+ after (\S+)$`)

// TestResumeThroughCutProxy: the connection of bob's client goes through a
// proxy that is cut three times while alice sends him 20 messages a
// second. Every message is printed once, in order; the client says on
// stderr where it resumed; the server's stdout shows one join and no
// disconnected line until bob quits.
func TestResumeThroughCutProxy(t *testing.T) {
	skipShort(t)
	t.Parallel()
	srv := startServer(t)
	proxy := chattest.NewProxy(t, srv.addr(), 0)
	bob := startClient(t, proxy.Port(), "bob", "--resume")
	srv.out.waitLine(t, "join: bob", timeout)
	alice := rawJoin(t, srv, "alice")

	const total = 80
	sent := sendTicking(alice, "bob", total) // 20 messages a second
	cuts := 0
	for i := 1; i <= total; i++ {
		bob.out.waitLine(t, fmt.Sprintf("msg: alice: m%d", i), timeout)
		if i%20 == 10 {
			proxy.Cut()
			cuts++
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("alice: %v", err)
	}
	for _, l := range bob.errs.waitMatches(t, resumedLine, cuts, timeout) {
		d, err := parseResumeDelay(l)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("resumed after %v", d) // measured, not asserted: docs/SESSIONS.md
	}
	for range total {
		srv.out.waitLine(t, "msg: alice", timeout)
	}
	bob.quit(t, srv) // the next server line is bob's one disconnected:
	if n := bob.errs.countMatch(regexp.MustCompile(`missed`)); n != 0 {
		t.Errorf("bob was told he missed messages, %d times", n)
	}
}

// TestResumeServerGone: the server is killed for good; a client that
// could resume finds no server at its address and prints the contract's
// line at once.
func TestResumeServerGone(t *testing.T) {
	skipShort(t)
	t.Parallel()
	srv := startServer(t)
	bob := joinClient(t, srv, "bob", "--resume")
	srv.cmd.Process.Kill()
	bob.out.waitLine(t, "disconnected: connection to server lost", timeout)
	bob.errs.waitAny(t, timeout, "the reason on stderr", func(s string) bool {
		return s == "client: connection lost, and no server answers at "+srv.addr()
	})
	bob.expectExit1AfterDisconnect(t)
}

// TestResumeWindowPasses: bob's connection is lost and he cannot come back
// (the proxy is gone): his client prints the contract's line, and the
// server, once its --resume-window has passed, prints disconnected: bob,
// once, and drops him from the list.
func TestResumeWindowPasses(t *testing.T) {
	skipShort(t)
	t.Parallel()
	srv := startServer(t, "--resume-window", "300ms")
	proxy := chattest.NewProxy(t, srv.addr(), 0)
	bob := startClient(t, proxy.Port(), "bob", "--resume")
	srv.out.waitLine(t, "join: bob", timeout)
	alice := rawJoin(t, srv, "alice")
	rawList(t, srv, alice, "2 alice bob")
	proxy.Close()
	bob.out.waitLine(t, "disconnected: connection to server lost", timeout)
	srv.out.waitLine(t, "disconnected: bob", timeout)
	rawList(t, srv, alice, "1 alice")
	bob.expectExit1AfterDisconnect(t)
}

// parseResumeDelay reads the duration of a resumedLine.
func parseResumeDelay(line string) (time.Duration, error) {
	m := resumedLine.FindStringSubmatch(line)
	if m == nil {
		return 0, fmt.Errorf("not a resumed line: %q", line)
	}
	return time.ParseDuration(m[1])
}

// BenchmarkResume measures how long a resume takes, from the proxy's cut
// to the client's line saying it resumed, while alice sends bob 20
// messages a second (docs/PERFORMANCE.md, "Resume"):
//
//	go test ./test/e2e -run '^$' -bench Resume -benchtime 200x
func BenchmarkResume(b *testing.B) {
	srv := startServer(b)
	proxy := chattest.NewProxy(b, srv.addr(), 0)
	bob := startClient(b, proxy.Port(), "bob", "--resume")
	srv.out.waitLine(b, "join: bob", timeout)
	alice := rawJoin(b, srv, "alice")
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-stop:
				sent <- n
				return
			case <-tick.C:
			}
			n++
			if alice.TryWrite(fr("send_message", fmt.Sprintf("1 bob m%d", n))) != nil {
				sent <- n - 1
				return
			}
		}
	}()
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		proxy.Cut()
		bob.errs.waitMatches(b, resumedLine, i+1, timeout)
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	close(stop)
	n := <-sent
	// Every message sent arrives once, in order.
	for i := 1; i <= n; i++ {
		bob.out.waitLine(b, fmt.Sprintf("msg: alice: m%d", i), timeout)
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
}

// A piped client (a course harness's) does not ask for resume: killed,
// it is gone from the server at once, as the contract says ("a connection
// that drops without disconnect is removed the same way"), and its place
// is free for the next (the handout: "for a 11th client to connect, one of
// the previous 10 clients will need to be disconnected"), not after the
// resume window, which a client that asked for resume would hold.
func TestKilledPipedClientLeavesAtOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--max-clients", "1")
	bob := joinClient(t, srv, "bob")
	if err := bob.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.out.waitLine(t, "disconnected: bob", 5*time.Second) // the window is 30 s
	joinClient(t, srv, "carol")
}
