package cluster

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/testbin"
)

// run runs gochatd to its end and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	start := time.Now()
	p := startProc(t, "gochatd", gochatdBin, args...)
	code = p.WaitExit(t, timeout)
	return code, strings.Join(p.Out.Snapshot(), "\n"), strings.Join(p.Errs.Snapshot(), "\n"), time.Since(start)
}

// Wrong or impossible cluster settings: a clear error, exit 1, and the
// chat port never opens.
func TestStartupRefusals(t *testing.T) {
	t.Parallel()
	closed := testbin.FreePort(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"both engines", []string{"--nats", "nats://127.0.0.1:4222", "--cluster-listen", "127.0.0.1:16001"}, "exclude each other"},
		{"bad URL", []string{"--nats", "localhost:4222"}, "not a nats:// or tls:// URL"},
		{"bad node name", []string{"--node", "a b", "--nats", "nats://127.0.0.1:4222"}, "--node"},
		{"peers without listen", []string{"--cluster-peers", "127.0.0.1:1"}, "--cluster-listen"},
		{"unreachable engine", []string{"--nats", fmt.Sprint("nats://127.0.0.1:", closed), "--cluster-wait", "3s"}, "cannot reach NATS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := testbin.FreePort(t)
			code, _, stderr, took := run(t, append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}, tc.args...)...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d after %v, stderr:\n%s\nwant exit 1 and %q", code, took, stderr, tc.want)
			}
			if took > 20*time.Second {
				t.Errorf("took %v to give up", took)
			}
		})
	}
}

// On one engine: a node with another client cap than the cluster's, or
// with the name of a live node, is refused; a node waits for its cluster
// before it opens its chat port.
func TestStartupAgainstCluster(t *testing.T) {
	t.Parallel()
	ext := startNATS(t)
	urls := ext.all
	nodes := startNodes(t, urls, 1, "--max-clients", "10")
	nats := "--nats=" + strings.Join(urls(0), ",")

	code, _, stderr, _ := run(t, "-a", "127.0.0.1", "-p", strconv.Itoa(testbin.FreePort(t)), "--node", "other", nats, "--max-clients", "20")
	if code != 1 || !strings.Contains(stderr, "client cap differs") || !strings.Contains(stderr, "the cluster has 10") {
		t.Errorf("another cap: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr, _ = run(t, "-a", "127.0.0.1", "-p", strconv.Itoa(testbin.FreePort(t)), "--node", nodes[0].name, nats, "--max-clients", "10")
	if code != 1 || !strings.Contains(stderr, "node name in use") {
		t.Errorf("a live node's name: exit %d, stderr:\n%s", code, stderr)
	}
	// The first node still serves.
	join(t, nodes[0], "alice").Send("ok", "alice")
}

// A node of a new embedded three-node cluster waits, saying what for,
// with its chat port closed, until the cluster can hold the registry: the
// first time, three copies of it need all three nodes.
func TestWaitsForMajority(t *testing.T) {
	t.Parallel()
	ports := [3]int{testbin.FreePort(t), testbin.FreePort(t), testbin.FreePort(t)}
	chat := [3]int{testbin.FreePort(t), testbin.FreePort(t), testbin.FreePort(t)}
	dir := t.TempDir()
	secret := writeSecret(t, dir)
	start := func(i int) *node {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprint("127.0.0.1:", p))
			}
		}
		n := &node{name: fmt.Sprint("n", i+1), port: chat[i], bin: gochatdBin}
		n.args = append(append([]string{}, nodeArgs...), "-p", strconv.Itoa(chat[i]), "--node", n.name,
			"--cluster-listen", fmt.Sprint("127.0.0.1:", ports[i]), "--cluster-peers", strings.Join(peers, ","),
			"--cluster-dir", filepath.Join(dir, n.name), "--cluster-secret-file", secret)
		n.Proc = startProc(t, n.name, n.bin, n.args...)
		return n
	}
	n1 := start(0)
	n1.Errs.Wait(t, "n1 saying what it waits for", 1, timeout, func(s string) bool { return strings.Contains(s, "waiting for") })
	if c, err := net.DialTimeout("tcp", n1.addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the chat port accepts before the node is part of its cluster")
	}
	n2 := start(1)
	n2.Errs.Wait(t, "n2 saying what it waits for", 1, timeout, func(s string) bool { return strings.Contains(s, "waiting for") })
	if c, err := net.DialTimeout("tcp", n2.addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("n2's chat port accepts before the cluster can hold the registry")
	}
	n3 := start(2)
	for _, n := range []*node{n1, n2, n3} {
		n.waitReady(t)
	}
	a, b := join(t, n1, "a"), join(t, n2, "b")
	a.waitList(usersList("a", "b"))
	// n2 may hear n1 a heartbeat later than n1 hears n2 (a node is heard
	// once its lease is seen): b sends once a is on his list too.
	b.waitList(usersList("a", "b"))
	b.Tell(a.Conn, "hi")
}
