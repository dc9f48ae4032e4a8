package cluster

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// The programs under test, built once by TestMain: gochatd (with the race
// detector when the tests run with it), gochatd without it (for memory
// figures, which the race detector inflates several times), nats-server.
var gochatdBin, gochatdPlainBin, natsBin string

const timeout = 20 * time.Second

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Suite{
		Name: "cluster",
		Programs: []testbin.Program{
			{Path: &gochatdBin, Pkg: "./cmd/gochatd"},
			{Path: &gochatdPlainBin, Pkg: "./cmd/gochatd", Name: "gochatd-norace", NoRace: true},
			{Path: &gochatBin, Pkg: "./cmd/gochat"},
			// The external engine of the tests: nats-server built from
			// the module in go.mod.
			{Path: &natsBin, Pkg: "github.com/nats-io/nats-server/v2", Name: "nats-server", NoRace: true},
		},
		ShortSkipsAll: true,
	})
}

// startProc starts bin with args, its output collected (testbin.Start).
func startProc(t testing.TB, label, bin string, args ...string) *testbin.Proc {
	t.Helper()
	return testbin.Start(t, label, exec.Command(bin, args...))
}

// node is one gochatd process of a cluster.
type node struct {
	*testbin.Proc
	name    string
	port    int // chat
	route   int // embedded engine's route port; 0 with an external engine
	metrics int
	bin     string
	args    []string
}

func (n *node) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// nodeArgs are the flags every test node gets.
var nodeArgs = []string{"-a", "127.0.0.1", "--log-level", "info"}

// startCluster starts k nodes with embedded engines routed to each other,
// and waits until every chat port accepts. extra flags go to every node.
func startCluster(t testing.TB, k int, extra ...string) []*node {
	t.Helper()
	return startClusterOf(t, gochatdBin, k, extra...)
}

// startThree is startCluster of three nodes, which it returns in order.
func startThree(t testing.TB, extra ...string) (n1, n2, n3 *node) {
	t.Helper()
	nodes := startCluster(t, 3, extra...)
	return nodes[0], nodes[1], nodes[2]
}

// startClusterOf is startCluster with the gochatd binary bin.
func startClusterOf(t testing.TB, bin string, k int, extra ...string) []*node {
	t.Helper()
	return startClusterEach(t, bin, k, nil, extra...)
}

// startClusterEach is startClusterOf with each(i)'s flags (if each is
// not nil) given to node i after extra.
func startClusterEach(t testing.TB, bin string, k int, each func(i int) []string, extra ...string) []*node {
	t.Helper()
	nodes := make([]*node, k)
	for i := range nodes {
		nodes[i] = &node{name: fmt.Sprint("n", i+1), port: testbin.FreePort(t), route: testbin.FreePort(t), metrics: testbin.FreePort(t)}
	}
	dir := t.TempDir()
	secret := writeSecret(t, dir)
	for i, n := range nodes {
		var peers []string
		for j, o := range nodes {
			if j != i {
				peers = append(peers, fmt.Sprint("127.0.0.1:", o.route))
			}
		}
		n.args = append(append([]string{}, nodeArgs...),
			"-p", strconv.Itoa(n.port), "--node", n.name,
			"--cluster-listen", fmt.Sprint("127.0.0.1:", n.route),
			"--cluster-peers", strings.Join(peers, ","),
			"--cluster-dir", filepath.Join(dir, n.name),
			"--cluster-secret-file", secret,
			"--metrics-addr", fmt.Sprint("127.0.0.1:", n.metrics))
		n.args = append(n.args, extra...)
		if each != nil {
			n.args = append(n.args, each(i)...)
		}
		n.bin = bin
		n.Proc = startProc(t, n.name, bin, n.args...)
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
	waitFormed(t, nodes)
	return nodes
}

// waitFormed waits until every node has heard every other. A node takes
// users once it is part of the cluster, and may hear a peer a heartbeat
// after that (a peer is heard once its lease is seen): until then the
// peer's users are not online for it, and a test that sends to them at
// once fails by timing (TestListensOnlyOnItsPorts, CI).
func waitFormed(t testing.TB, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		for _, o := range nodes {
			if o == n {
				continue
			}
			peer := "peer=" + o.name + " "
			n.Errs.Wait(t, n.name+" hearing "+o.name, 1, 60*time.Second, func(s string) bool {
				return strings.Contains(s, `msg="node heard"`) && strings.Contains(s+" ", peer) && strings.Contains(s, "state=up")
			})
		}
	}
}

// writeSecret writes a fresh cluster secret into dir, readable by its
// owner only, and returns its path.
func writeSecret(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("secret-%d", secretSeq.Add(1)))
	if err := os.WriteFile(path, []byte(rand.Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var secretSeq atomic.Int64

// waitReady waits until the node's chat port accepts.
func (n *node) waitReady(t testing.TB) {
	t.Helper()
	n.Errs.Wait(t, n.name+" listening", 1, 60*time.Second, func(s string) bool { return strings.Contains(s, "msg=listening") })
}

// stop ends the node with SIGTERM and waits for it to exit 0.
func (n *node) stop(t testing.TB) {
	t.Helper()
	if code := n.Stop(t, timeout); code != 0 {
		t.Errorf("%s exited %d after SIGTERM", n.name, code)
	}
}

// restart starts the node again with the same flags.
func (n *node) restart(t testing.TB) {
	t.Helper()
	n.Proc = startProc(t, n.name, n.bin, n.args...)
	n.waitReady(t)
}

// metric returns the sum of the series of name whose labels contain every
// one of labels ("k=\"v\"").
func (n *node) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	sum := 0.0
	for series, v := range testbin.Metrics(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", n.metrics)) {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(series, l)
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// conn is the shared raw client, with this suite's helpers as methods.
type conn struct{ *chattest.Conn }

func dial(t testing.TB, n *node, name string) *conn {
	t.Helper()
	c := chattest.Dial(t, n.addr(), name)
	c.Timeout = timeout
	return &conn{c}
}

// join joins name on n and waits for the node's join line.
func join(t testing.TB, n *node, name string) *conn {
	t.Helper()
	c := dial(t, n, name)
	c.Join(name)
	n.Out.WaitLine(t, "join: "+name, timeout)
	return c
}

// joinPair joins alice on n1 and bob on n2, and waits until alice's node
// lists both.
func joinPair(t testing.TB, n1, n2 *node) (alice, bob *conn) {
	t.Helper()
	alice, bob = join(t, n1, "alice"), join(t, n2, "bob")
	alice.waitList(usersList("alice", "bob"))
	return alice, bob
}

// joinChunked joins name asking for the chunked-file extension.
func joinChunked(t testing.TB, n *node, name string) *conn {
	t.Helper()
	c := dial(t, n, name)
	if got := c.Hello(protocol.FeatureChunkedFile); got != protocol.FeatureChunkedFile {
		t.Fatalf("%s: ext_hello accepted %q, want %q", name, got, protocol.FeatureChunkedFile)
	}
	c.Join(name)
	n.Out.WaitLine(t, "join: "+name, timeout)
	return c
}

// waitList asks for the list until it is want: a node learns of other
// nodes' users through the engine, a few milliseconds after their join.
func (c *conn) waitList(want string) {
	c.T.Helper()
	c.waitListWithin(want, timeout) // no figure of the issue; a loaded machine may take seconds
}

// waitListWithin is waitList within d.
func (c *conn) waitListWithin(want string, d time.Duration) {
	c.T.Helper()
	deadline := time.Now().Add(d)
	for got := c.List(); got != want; got = c.List() {
		if time.Now().After(deadline) {
			c.T.Fatalf("%s: list %q, want %q", c.Name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// usersList is the payload of a response_users_list naming names (sorted).
func usersList(names ...string) string {
	return string(payloadOf(protocol.AppendUsersList(nil, names)))
}

// payloadOf strips a frame's header.
func payloadOf(frame []byte) []byte {
	i := bytes.IndexByte(frame, ' ')
	j := bytes.IndexByte(frame[i+1:], ' ')
	return frame[i+1+j+1:]
}

// waitUsers waits until every node counts want users (chat_users). The
// registry is shared through the engine, and nothing tells a test when
// every node has caught up, so this one looks every 100 ms.
func waitUsers(t testing.TB, nodes []*node, want int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, n := range nodes {
			ok = ok && n.metric(t, "chat_users") == float64(want)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				t.Logf("%s: chat_users %v", n.name, n.metric(t, "chat_users"))
			}
			t.Fatalf("the nodes never all counted %d users", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpGet returns the body at url.
func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
