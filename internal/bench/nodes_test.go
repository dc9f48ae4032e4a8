package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHalves(t *testing.T) {
	cases := []struct {
		n, r    int
		senders int
		rcpts   map[int][]int
	}{
		{100, 1, 50, map[int][]int{0: {50}, 1: {51}, 49: {99}}},
		{100, 3, 50, map[int][]int{0: {50, 51, 52}, 49: {99, 50, 51}}},
		{5, 1, 2, map[int][]int{0: {2}, 1: {3}}},
		{5, 3, 2, map[int][]int{1: {3, 4, 2}}},
		{2, 1, 1, map[int][]int{0: {1}}},
	}
	for _, c := range cases {
		tr, err := halves(c.n, c.r)
		if err != nil {
			t.Fatalf("halves(%d, %d): %v", c.n, c.r, err)
		}
		if tr.n != c.n || tr.senders != c.senders || tr.r != c.r {
			t.Fatalf("halves(%d, %d) = n %d senders %d r %d", c.n, c.r, tr.n, tr.senders, tr.r)
		}
		for i, want := range c.rcpts {
			if got := tr.rcpts(i); !slices.Equal(got, want) {
				t.Errorf("halves(%d, %d).rcpts(%d) = %v, want %v", c.n, c.r, i, got, want)
			}
		}
		// Every sender's recipients are distinct non-senders.
		for i := range tr.senders {
			got := tr.rcpts(i)
			for _, x := range got {
				if x < tr.senders || x >= tr.n {
					t.Fatalf("halves(%d, %d): sender %d sends to %d", c.n, c.r, i, x)
				}
			}
			if s := slices.Compact(slices.Sorted(slices.Values(got))); len(s) != len(got) {
				t.Fatalf("halves(%d, %d): sender %d's recipients repeat: %v", c.n, c.r, i, got)
			}
		}
	}
	for _, bad := range [][2]int{{1, 1}, {0, 1}, {4, 3}, {100, 51}, {10, 0}} {
		if _, err := halves(bad[0], bad[1]); err == nil {
			t.Errorf("halves(%d, %d) accepted", bad[0], bad[1])
		}
	}
	tr := everyone(10, 3)
	if tr.senders != 10 || !slices.Equal(tr.rcpts(8), []int{9, 0, 1}) {
		t.Fatalf("everyone(10, 3): senders %d, rcpts(8) %v", tr.senders, tr.rcpts(8))
	}
}

func TestRoundSenders(t *testing.T) {
	s := roundSenders(57000, 1000)
	if len(s) != 1000 || s[0] != 0 || s[999] != 56943 || !slices.IsSorted(s) || len(slices.Compact(slices.Clone(s))) != 1000 {
		t.Fatalf("roundSenders(57000, 1000): %d senders, first %d, last %d", len(s), s[0], s[len(s)-1])
	}
	if s := roundSenders(7, 3); !slices.Equal(s, []int{0, 2, 4}) {
		t.Fatalf("roundSenders(7, 3) = %v", s)
	}
	for _, k := range []int{0, 7, 8} {
		if s := roundSenders(7, k); !slices.Equal(s, []int{0, 1, 2, 3, 4, 5, 6}) {
			t.Fatalf("roundSenders(7, %d) = %v, want everyone", k, s)
		}
	}
}

func TestRoundPeer(t *testing.T) {
	// One node: the next user, wrapping.
	if roundPeer(3, 10, 1) != 4 || roundPeer(9, 10, 1) != 0 {
		t.Fatal("one node: not the next user")
	}
	// Several nodes: the first user after g on another node (user u
	// joins node u % nodes).
	for nodes := 2; nodes <= 4; nodes++ {
		for total := nodes; total <= 20; total++ {
			for g := range total {
				p := roundPeer(g, total, nodes)
				if p == g || p%nodes == g%nodes {
					t.Fatalf("roundPeer(%d, %d, %d) = %d: same node", g, total, nodes, p)
				}
				for q := (g + 1) % total; q != p; q = (q + 1) % total {
					if q%nodes != g%nodes {
						t.Fatalf("roundPeer(%d, %d, %d) = %d skips %d on another node", g, total, nodes, p, q)
					}
				}
			}
		}
	}
}

func TestRoundReceipts(t *testing.T) {
	// Split into workers as runScale does, the receipts add up to the
	// senders, for every kind of round.
	for _, c := range []struct{ total, k, nodes, perWorker int }{
		{57000, 1000, 3, 10000}, {57000, 0, 3, 10000}, {19000, 0, 1, 10000}, {10, 4, 3, 3}, {7, 0, 3, 2},
	} {
		senders := roundSenders(c.total, c.k)
		sum := 0
		for first := 0; first < c.total; first += c.perWorker {
			sum += roundReceipts(senders, first, min(c.perWorker, c.total-first), c.total, c.nodes)
		}
		if sum != len(senders) {
			t.Errorf("%+v: workers expect %d messages, %d are sent", c, sum, len(senders))
		}
	}
	// One node, everyone sends: everyone gets exactly one.
	all := roundSenders(100, 0)
	for g := range 100 {
		if n := roundReceipts(all, g, 1, 100, 1); n != 1 {
			t.Fatalf("user %d gets %d messages", g, n)
		}
	}
}

func TestClientsOnAndPerClient(t *testing.T) {
	for _, c := range [][2]int{{57000, 3}, {10, 3}, {11, 3}, {5, 5}, {19000, 1}} {
		n, k := c[0], c[1]
		sum := 0
		for i := range k {
			want := 0
			for g := range n {
				if g%k == i {
					want++
				}
			}
			if got := clientsOn(i, k, n); got != want {
				t.Fatalf("clientsOn(%d, %d, %d) = %d, want %d", i, k, n, got, want)
			}
			sum += want
		}
		if sum != n {
			t.Fatalf("%d clients over %d nodes add up to %d", n, k, sum)
		}
	}
	// The worst node counts: n2 grew 3 MiB for its 1,000 clients.
	base := []int64{10 << 20, 10 << 20, 20 << 20}
	now := []int64{12 << 20, 13 << 20, 21 << 20}
	if got := perClientKiB(base, now, 3000); math.Abs(got-3*1024/1000.0) > 1e-9 {
		t.Fatalf("perClientKiB = %v, want %v", got, 3*1024/1000.0)
	}
}

func TestClusterArgsParse(t *testing.T) {
	chat, route := []int{15001, 15002, 15003}, []int{16001, 16002, 16003}
	args := clusterArgs(1, chat, route, 57019, "/tmp/x", 2*time.Minute)
	joined := strings.Join(args, " ")
	for _, want := range []string{"-p 15002", "--max-clients 57019", "--flood-rate 0", "--node n2",
		"--cluster-listen 127.0.0.1:16002", "--cluster-peers 127.0.0.1:16001,127.0.0.1:16003",
		"--cluster-dir " + filepath.Join("/tmp/x", "n2"), "--cluster-secret-file " + filepath.Join("/tmp/x", "secret"), "--cluster-wait 2m0s"} {
		if !strings.Contains(joined, want) {
			t.Errorf("clusterArgs: %q lacks %q", joined, want)
		}
	}
	// The tool's own server role takes them, as cmd/gochatd does.
	env := map[string]string{ServerProfileEnv: "/tmp/cpu", ServerMemProfileEnv: "/tmp/mem"}
	f, err := parseServerFlags(args, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cl := f.cluster
	if f.port != 15002 || f.cfg.MaxClients != 57019 || f.cfg.FloodRate != 0 || cl.Node != "n2" || cl.Listen != "127.0.0.1:16002" ||
		!slices.Equal(cl.Peers, []string{"127.0.0.1:16001", "127.0.0.1:16003"}) || cl.Dir != "/tmp/x/n2" || cl.SecretFile != "/tmp/x/secret" || cl.Wait != 2*time.Minute || cl.MaxClients != 57019 {
		t.Fatalf("parsed %+v", f)
	}
	// Each node profiles to a file of its own.
	if f.profile != "/tmp/cpu.n2" || f.memProf != "/tmp/mem.n2" {
		t.Fatalf("profiles %q %q", f.profile, f.memProf)
	}
	// A lone server keeps cmd/gochatd's defaults but for flood control.
	f, err = parseServerFlags(serverArgs(15000, 10), func(string) string { return "" })
	if err != nil || f.cluster.Node != "" || f.cfg.FloodRate != 0 || f.cfg.PaceBacklog == 0 || f.cfg.FloodBytes == 0 || f.profile != "" {
		t.Fatalf("lone server: %+v %v", f, err)
	}
	for _, bad := range [][]string{
		{"-p"},
		{"--bogus", "1"},
		{"-a", "10.0.0.1", "-p", "1"},
		{"--max-clients", "x"},
		{"--node", "n1"}, // no engine
		{"--node", "n 1", "--cluster-listen", "127.0.0.1:1"},
		{"--cluster-wait", "soon"},
	} {
		if _, err := parseServerFlags(bad, func(string) string { return "" }); err == nil {
			t.Errorf("parseServerFlags(%q) accepted", bad)
		}
	}
}

func TestClusterFlags(t *testing.T) {
	c, err := ParseArgs([]string{"--cluster", "3", "--server-bin", "/tmp/gochatd", "--scale-clients", "57000"}, io.Discard)
	if err != nil || c.Cluster != 3 || c.RoundSample != 1000 {
		t.Fatalf("--cluster 3: %+v %v", c, err)
	}
	cases := map[string][]string{
		"one node":               {"--cluster", "1"},
		"too many nodes":         {"--cluster", "10"},
		"external server":        {"--cluster", "3", "--server-addr", "127.0.0.1:15000"},
		"limits":                 {"--cluster", "3", "--limits"},
		"one client cannot span": {"--cluster", "3", "--clients", "1", "throughput"},
		"recipients over half":   {"--cluster", "3", "--clients", "10", "--recipients", "6"},
		"latency clients":        {"--cluster", "3", "--latency-clients", "1"},
		"fewer users than nodes": {"--cluster", "3", "--scale-clients", "2"},
		"sample over clients":    {"--cluster", "3", "--scale-clients", "100", "--round-sample", "101"},
		"zero sample":            {"--round-sample", "0"},
		"negative join rate":     {"--join-rate", "-5"},
	}
	for name, args := range cases {
		if _, err := ParseArgs(args, io.Discard); err == nil {
			t.Errorf("%s: %q accepted", name, strings.Join(args, " "))
		}
	}
	// Without --cluster, the split rules do not apply.
	if _, err := ParseArgs([]string{"--clients", "1"}, io.Discard); err != nil {
		t.Fatalf("--clients 1 without --cluster: %v", err)
	}
}

func TestClusterTable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cluster = 3
	noRun := func(context.Context, []*target) (int, error) { return 0, errors.New("not run") }
	tr := clusterTrial(cfg, Throughput, "clients=100", 116, noRun, nil)
	row := tableRow(tr.workload, tr.params, tr.system, tr.baseName)
	var b bytes.Buffer
	if err := WriteTable(&b, []Row{row("delivered", "msgs/s", 600, 1000, ">= 0.5x")}); err != nil {
		t.Fatal(err)
	}
	want := `throughput  clients=100
  metric     unit    cluster  single-node   ratio  target
  delivered  msgs/s      600         1000  0.600x  >= 0.5x
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	if tr.base == nil || !tr.baseFirst {
		t.Fatalf("the single node is not measured first: %+v", tr)
	}
	cfg.NoBaseline = true
	tr = clusterTrial(cfg, Throughput, "clients=100", 116, noRun, nil)
	r := tableRow(tr.workload, tr.params, tr.system, tr.baseName)("delivered", "msgs/s", 600, 1000, "")
	if tr.base != nil || r.HasBase() || !math.IsNaN(r.Ratio()) {
		t.Fatalf("--no-baseline row has a baseline: %+v", r)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 1200, stime 34.
	stat := "4242 (gochatd (n1) x) S 1 4242 4242 0 -1 4194560 9147 0 0 0 1200 34 0 0 20 0 9 0 123 456 789"
	if v, err := parseStatCPU(stat); err != nil || v != 1234 {
		t.Fatalf("parseStatCPU = %d %v, want 1234", v, err)
	}
	for _, bad := range []string{"", "4242 gochatd S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 9147 0 0 0 -5 34 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
	if v := (cpuMeter{}).seconds(); !math.IsNaN(v) {
		t.Fatalf("empty meter = %v, want NaN", v)
	}
	// This process has used some CPU, and a meter of it never goes back.
	self := cpuMeter{os.Getpid()}
	a := self.seconds()
	for i := 0; i < 1e7; i++ {
		_ = i * i
	}
	if b := self.seconds(); math.IsNaN(a) || b < a {
		t.Fatalf("meter of this process: %v then %v", a, b)
	}
	if got := pidsOf([]*target{{PID: 5}, {PID: 5}, {PID: 0}, {PID: 7}}); !slices.Equal(got, cpuMeter{5, 7}) {
		t.Fatalf("pidsOf = %v", got)
	}
}
