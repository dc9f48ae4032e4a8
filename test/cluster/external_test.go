package cluster

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// natsServer is one process of an external NATS cluster.
type natsServer struct {
	*testbin.Proc
	name  string
	port  int
	route int
	args  []string
}

func (s *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// natsCluster is an external NATS cluster's servers.
type natsCluster []*natsServer

// all gives every node the URLs of all the servers (startNodes' urls).
func (c natsCluster) all(int) []string {
	urls := make([]string, len(c))
	for i, s := range c {
		urls[i] = s.url()
	}
	return urls
}

// startNATS starts a three-server NATS cluster with JetStream, as an
// operator would run it, and waits until each server is ready.
func startNATS(t *testing.T) natsCluster {
	t.Helper()
	servers := make([]*natsServer, 3)
	for i := range servers {
		servers[i] = &natsServer{name: fmt.Sprint("e", i+1), port: testbin.FreePort(t), route: testbin.FreePort(t)}
	}
	dir := t.TempDir()
	for i, s := range servers {
		var routes []string
		for j, o := range servers {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.route))
			}
		}
		// --no_advertise: clients learn no other servers' addresses, so
		// a node reaches only the servers it was given (the partition
		// test's proxy must not be bypassed).
		s.args = []string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-n", s.name, "-js", "-sd", filepath.Join(dir, s.name),
			"--cluster_name", "ext", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", s.route), "--routes", strings.Join(routes, ","),
			"--no_advertise"}
		s.Proc = startProc(t, s.name, natsBin, s.args...)
	}
	for _, s := range servers {
		s.Errs.Wait(t, s.name+" ready", 1, timeout, func(l string) bool { return strings.Contains(l, "Server is ready") })
	}
	return servers
}

// startNodes starts k gochatd nodes on the external engine at urls (each
// node gets its own list).
func startNodes(t *testing.T, urls func(i int) []string, k int, extra ...string) []*node {
	t.Helper()
	nodes := make([]*node, k)
	for i := range nodes {
		n := &node{name: fmt.Sprint("n", i+1), port: testbin.FreePort(t), metrics: testbin.FreePort(t), bin: gochatdBin}
		n.args = append(append([]string{}, nodeArgs...), "-p", strconv.Itoa(n.port), "--node", n.name,
			"--nats", strings.Join(urls(i), ","), "--metrics-addr", fmt.Sprint("127.0.0.1:", n.metrics))
		n.args = append(n.args, extra...)
		n.Proc = startProc(t, n.name, n.bin, n.args...)
		nodes[i] = n
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
	return nodes
}

var connectedRE = regexp.MustCompile(`msg="connected to the engine".* server=nats://127\.0\.0\.1:(\d+)`)

// enginePort returns the port of the NATS server n connected to first.
func (n *node) enginePort(t *testing.T) int {
	t.Helper()
	for _, l := range n.Errs.Snapshot() {
		if m := connectedRE.FindStringSubmatch(l); m != nil {
			p, _ := strconv.Atoi(m[1])
			return p
		}
	}
	t.Fatalf("%s never said which engine server it connected to", n.name)
	return 0
}

// On an external three-server NATS cluster, one NATS server killed with
// SIGKILL: chat between nodes resumes within 10 s, and joins work again
// within 15 s.
func TestExternalEngineServerKilled(t *testing.T) {
	t.Parallel()
	ext := startNATS(t)
	nodes := startNodes(t, ext.all, 3)
	alice, bob := joinPair(t, nodes[0], nodes[1])
	alice.Tell(bob.Conn, "before")

	// Kill the NATS server n1 is connected to.
	port := nodes[0].enginePort(t)
	var victim *natsServer
	for _, s := range ext {
		if s.port == port {
			victim = s
		}
	}
	victim.Kill()
	killed := time.Now()

	// Chat: alice sends every 100 ms; the first to reach bob ends the wait.
	got := make(chan time.Duration, 1)
	go func() {
		for {
			h, p, err := bob.ReadFrame()
			if err != nil {
				return
			}
			if h.Type == protocol.ForwardMessage && strings.HasPrefix(string(p), "1 alice after") {
				got <- time.Since(killed)
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var resumed time.Duration
wait:
	for i := 0; ; i++ {
		select {
		case resumed = <-got:
			break wait
		case <-tick.C:
			if time.Since(killed) > 10*time.Second {
				t.Fatal("chat between nodes did not resume within 10 s")
			}
			alice.Send(fmt.Sprint("after ", i), "bob")
		}
	}
	t.Logf("chat across nodes resumed %v after the NATS server was killed", resumed.Round(10*time.Millisecond))

	for i := 0; ; i++ {
		r, _ := outcome(t, nodes[i%3], fmt.Sprint("late", i))
		if r == "joined" {
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("joins still failing 15 s after the NATS server was killed (last: %s)", r)
		}
	}
	t.Logf("joins worked again %v after the NATS server was killed", time.Since(killed).Round(10*time.Millisecond))
}

// A partition: a proxy in front of one node's engine connection stops
// passing bytes without closing. The cut-off node stops admitting and cuts
// its users off before the majority gives their names away: never two
// live sessions with one name. Healed, it takes its place again.
func TestPartition(t *testing.T) {
	t.Parallel()
	ext := startNATS(t)
	px := chattest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", ext[2].port), 0)
	urls := func(i int) []string {
		if i == 2 {
			return []string{"nats://" + px.Addr()} // n3 reaches the engine only through the proxy
		}
		return []string{ext[0].url(), ext[1].url()}
	}
	nodes := startNodes(t, urls, 3, "--cluster-replicas", "3")
	n1, n3 := nodes[0], nodes[2]
	probe := join(t, n1, "probe")
	carol := join(t, n3, "carol")
	probe.waitList(usersList("carol", "probe"))

	px.Stall()
	stalled := time.Now()
	cut := make(chan time.Time, 1)
	go func() {
		carol.NC.SetReadDeadline(time.Now().Add(60 * time.Second))
		io.Copy(io.Discard, carol.NC)
		cut <- time.Now()
	}()
	// The majority gives carol's name away once n3's lease has expired.
	var freed time.Time
	for {
		if r, _ := outcome(t, n1, "carol"); r == "joined" {
			freed = time.Now()
			break
		}
		if time.Since(stalled) > 60*time.Second {
			t.Fatal("carol's name never freed on the majority side")
		}
		time.Sleep(250 * time.Millisecond)
	}
	var cutAt time.Time
	select {
	case cutAt = <-cut:
	default:
		t.Fatalf("carol's session on the cut-off node still open when her name was given away %v after the partition", freed.Sub(stalled))
	}
	if !cutAt.Before(freed) {
		t.Fatalf("carol cut off at %v, her name given away at %v: two live sessions", cutAt.Sub(stalled), freed.Sub(stalled))
	}
	t.Logf("partition: carol cut off after %v, her name free on the majority after %v", cutAt.Sub(stalled).Round(10*time.Millisecond), freed.Sub(stalled).Round(10*time.Millisecond))
	if r, _ := outcome(t, n3, "dave"); r == "joined" {
		t.Fatal("the cut-off node admitted a join")
	}
	n3.Out.WaitLine(t, "disconnected: carol", timeout)

	px.Heal()
	healed := time.Now()
	for {
		r, c := outcome(t, n3, fmt.Sprint("erin", time.Since(healed).Milliseconds()))
		if r == "joined" {
			c.Send("back", "probe")
			probe.Expect(protocol.ForwardMessage, fmt.Sprintf("1 %s back", c.Name))
			break
		}
		if time.Since(healed) > 30*time.Second {
			t.Fatalf("the healed node does not admit again (last: %s)", r)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("healed node admitting again after %v", time.Since(healed).Round(10*time.Millisecond))
}
