package e2e

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// The heartbeat extension (issue 22): a connection that goes silent
// without a FIN or a RST is seen as lost in seconds. The real client and
// server, with a TCP proxy between them that the test turns into a
// black hole (chattest.Proxy's Blackhole).

var (
	silentLine = regexp.MustCompile(`^client: no answer from the server for (\S+); taking the connection as lost$`)
	// hbInterval is the clients' heartbeat in these tests: a dead link
	// is taken as lost after three of them.
	hbInterval = 200 * time.Millisecond
)

// TestHeartbeatBlackhole: bob's connection goes through a proxy that
// turns into a black hole while alice sends him 20 messages a second. His
// client notices the silence (stderr says so), reconnects through the
// proxy (a new connection is relayed) and resumes on the same server:
// every message is printed once, in order; the server prints no second
// join and no disconnected line. Without the heartbeat bob's client
// would wait on the dead connection for good.
func TestHeartbeatBlackhole(t *testing.T) {
	skipShort(t)
	t.Parallel()
	srv := startServer(t)
	proxy := chattest.NewProxy(t, srv.addr(), 0)
	bob := startClient(t, proxy.Port(), "bob", "--resume", "--heartbeat", hbInterval.String())
	srv.out.waitLine(t, "join: bob", timeout)
	alice := rawJoin(t, srv, "alice")

	const total = 60
	sent := sendTicking(alice, "bob", total) // 20 messages a second
	var holed time.Time
	for i := 1; i <= total; i++ {
		bob.out.waitLine(t, fmt.Sprintf("msg: alice: m%d", i), timeout)
		if i == 10 {
			proxy.Blackhole()
			holed = time.Now()
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("alice: %v", err)
	}
	silent := bob.errs.waitAny(t, timeout, "the heartbeat's line", silentLine.MatchString)
	d, err := time.ParseDuration(silentLine.FindStringSubmatch(silent)[1])
	if err != nil {
		t.Fatal(err)
	}
	if d < 3*hbInterval {
		t.Errorf("taken as lost after %v of silence, before three intervals (%v)", d, 3*hbInterval)
	}
	resumed := bob.errs.waitMatches(t, resumedLine, 1, timeout)
	t.Logf("%s; %s; all %d messages by %v after the black hole", silent, resumed[0], total, time.Since(holed).Round(time.Millisecond))
	for range total {
		srv.out.waitLine(t, "msg: alice", timeout)
	}
	bob.quit(t, srv) // the next server line is bob's one disconnected:
	if n := bob.errs.countMatch(regexp.MustCompile(`missed`)); n != 0 {
		t.Errorf("bob was told he missed messages, %d times", n)
	}
}

// TestHeartbeatServerCutsSilent: a client that asked for heartbeat and
// resume and then fell silent (its frames stopped reaching the server)
// is pinged, then cut off by the server after --heartbeat-timeout: the
// log says why; stdout says nothing (the session waits for a resume);
// the user stays listed.
func TestHeartbeatServerCutsSilent(t *testing.T) {
	t.Parallel()
	const hbTimeout = 500 * time.Millisecond
	srv := startServer(t, "--heartbeat-timeout", hbTimeout.String())
	bob := dialRaw(t, srv.port, "bob")
	bob.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureHeartbeat, protocol.FeatureResume}))
	bob.Expect(protocol.ExtHello, protocol.FeatureHeartbeat+" "+protocol.FeatureResume)
	bob.Write(fr("join", "bob"))
	srv.out.waitLine(t, "join: bob", timeout)
	bob.ExpectType(protocol.Session)
	last := time.Now()
	bob.Expect(protocol.Ping, "")
	if quiet := time.Since(last); quiet < hbTimeout/2 {
		t.Errorf("pinged after %v, before half the timeout", quiet)
	}
	bob.ExpectEnd()
	if quiet := time.Since(last); quiet < hbTimeout {
		t.Errorf("cut off after %v, before the timeout", quiet)
	}
	srv.errs.waitAny(t, timeout, "the cut in the log", func(s string) bool {
		return strings.Contains(s, "silent past the heartbeat timeout") && strings.Contains(s, "user=bob")
	})
	alice := rawJoin(t, srv, "alice")
	rawList(t, srv, alice, "2 alice bob")
}

// TestHeartbeatNeverForContract: a contract client, joined to a server
// with a short heartbeat timeout, says nothing for several timeouts: it
// is never pinged nor cut off. A piped gochat asks for no heartbeat
// unless told (the course's harness sees today's client).
func TestHeartbeatNeverForContract(t *testing.T) {
	t.Parallel()
	const hbTimeout = 300 * time.Millisecond
	srv := startServer(t, "--heartbeat-timeout", hbTimeout.String(), "--log-level", "debug")
	plain := rawJoin(t, srv, "plain")
	piped := joinClient(t, srv, "piped")
	plain.NC.SetReadDeadline(time.Now().Add(4 * hbTimeout))
	var ne net.Error
	if h, err := plain.R.ReadHeader(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the contract client got %s (%v), want nothing", h.Name, err)
	}
	rawList(t, srv, plain, "2 piped plain")
	syncList(t, srv, piped, "piped plain")
	// The debug log names what each connection asked for.
	srv.errs.waitAny(t, timeout, "the piped client's extensions", func(s string) bool {
		return strings.Contains(s, "msg=extensions")
	})
	if n := srv.errs.countMatch(regexp.MustCompile(`heartbeat`)); n != 0 {
		t.Errorf("%d log records about a heartbeat:\n%s", n, srv.dump())
	}
}
