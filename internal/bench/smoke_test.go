package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Smoke tests of the workloads' plumbing at toy sizes. They check that
// every message is accounted for, never how fast anything is.

// smokeServer starts a server in this process with room for maxClients,
// stopped at the end of the test, and returns it with a context that ends
// a minute from now. In -short mode it skips the test.
func smokeServer(t *testing.T, maxClients int) (context.Context, *target) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	srv, err := inProcess(maxClients, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return ctx, srv
}

// runCSV runs cfg as the tool does, with --csv, and returns its records
// after the header.
func runCSV(t *testing.T, ctx context.Context, cfg Config) [][]string {
	t.Helper()
	cfg.CSV = true
	var out, progress bytes.Buffer
	if err := Run(ctx, cfg, &out, &progress); err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs[1:]
}

func TestThroughputAndLatencyPlumbing(t *testing.T) {
	ctx, srv := smokeServer(t, 100)
	ns, err := newNATSSystem()
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range []system{newChatSystem(srv.Addr, 2, 4<<10, 4<<10), ns} {
		tp, err := runThroughput(ctx, sys, everyone(4, 2), 40, 50*time.Millisecond, 150*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("%s throughput: %v", sys.Name(), err)
		}
		if tp.Delivered <= 0 || tp.MBps <= 0 || tp.Lat.Count == 0 {
			t.Fatalf("%s throughput: nothing delivered: %+v", sys.Name(), tp)
		}
	}
	ns, err = newNATSSystem()
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range []system{newChatSystem(srv.Addr, 2, 4<<10, 4<<10), ns} {
		lat, err := runLatency(ctx, sys, everyone(6, 1), 500, 32, 50*time.Millisecond, 200*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("%s latency: %v", sys.Name(), err)
		}
		if lat.Lat.Count == 0 || lat.Lost != 0 {
			t.Fatalf("%s latency: %d measured, %d lost", sys.Name(), lat.Lat.Count, lat.Lost)
		}
	}
}

func TestFilesPlumbing(t *testing.T) {
	ctx, srv := smokeServer(t, 100)
	for _, mode := range []string{ModePlain, ModeChunked} {
		for _, slow := range []int{0, 256 << 10} { // a slow recipient takes 12 s, not waited for
			res, err := runFiles(ctx, srv, srv, 3<<20+7, 2, 200, slow, mode, 30*time.Second, nil)
			if err != nil {
				t.Fatalf("%s, slow %d: %v", mode, slow, err)
			}
			if res.MBps <= 0 || res.ChatRecv != res.ChatSent || res.SenderNext <= 0 {
				t.Fatalf("%s, slow %d: %+v", mode, slow, res)
			}
		}
	}
	if _, err := tcpCopy(ctx, 3<<20+7, 2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestClientFilesPlumbing runs the clients file mode with the test binary
// re-executed as the clients, and its baseline.
func TestClientFilesPlumbing(t *testing.T) {
	ctx, srv := smokeServer(t, 100)
	dir := t.TempDir()
	const size = 3<<20 + 7
	src := filepath.Join(dir, "bench.bin")
	if err := writeSource(src, size); err != nil {
		t.Fatal(err)
	}
	res, err := runClientFiles(ctx, srv, "", src, dir, size, 2, 200, 30*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.MBps <= 0 || res.ChatRecv != res.ChatSent || res.ClientRSSBase <= 0 {
		t.Fatalf("%+v", res)
	}
	if secs, err := syncedCopy(ctx, src, dir, 2, 30*time.Second); err != nil || secs <= 0 {
		t.Fatalf("synced copy: %v s, %v", secs, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind in %s: %v", dir, ents)
	}
}

// TestWorkerProtocol runs a scale worker in this process, over pipes.
func TestWorkerProtocol(t *testing.T) {
	_, srv := smokeServer(t, 100)
	const n = 6
	spec := workerSpec{Addrs: []string{srv.Addr}, Total: n, Size: 32, clientRange: clientRange{Prefix: "wt_", Count: n, SrcAddrs: 3, Timeout: 20 * time.Second}}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- RunWorker(spec.args(), inR, outW, io.Discard)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("worker ended early: %v", lines.Err())
		}
		return lines.Text()
	}
	if f := strings.Fields(next()); len(f) != 4 || f[0] != "joined" || f[1] != strconv.Itoa(n) || f[2] != "0" {
		t.Fatalf("joined line %q", f)
	}
	// Wait until the server has them all, as runScale's probe does.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var probes clientSet
	defer probes.close()
	probe, err := probes.dial(ctx, srv.Addr, "wt_probe", 4<<10, 4<<10, handlers{})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitJoined(ctx, probe, "wt_", n+1, nil); err != nil {
		t.Fatal(err)
	}
	// Every client, then a sample of 2 (clients 0 and 3, to 1 and 4).
	for _, k := range []int{0, 2, n} {
		io.WriteString(inW, "round "+strconv.Itoa(k)+"\n")
		if line := next(); line != "ready" {
			t.Fatalf("round %d: worker said %q, want ready", k, line)
		}
		io.WriteString(inW, "go\n")
		want := len(roundSenders(n, k))
		f := strings.SplitN(next(), " ", 3)
		if len(f) != 3 || f[0] != "round" || f[1] != strconv.Itoa(want) {
			t.Fatalf("round %d: line %q, want %d received", k, f, want)
		}
		var h Histogram
		if err := h.UnmarshalText([]byte(f[2])); err != nil || h.Count() != int64(want) {
			t.Fatalf("round %d: histogram %q: %v", k, f[2], err)
		}
	}
	io.WriteString(inW, "quit\n")
	if c := <-code; c != 0 {
		t.Fatalf("worker exit %d", c)
	}
}

// TestSplitAndScalePlumbing runs the cluster workloads' plumbing against
// one in-process server standing for every node: senders and recipients
// on "different" nodes, and a scale run through real worker processes
// (this test binary, see TestMain) whose clients spread over three
// addresses, with a sampled round and a full one.
func TestSplitAndScalePlumbing(t *testing.T) {
	ctx, srv := smokeServer(t, 200)
	tr, err := halves(6, 2)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := runThroughput(ctx, splitSystem(srv.Addr, srv.Addr, tr, 2, 4<<10, 4<<10), tr, 40, 50*time.Millisecond, 150*time.Millisecond, nil)
	if err != nil || tp.Delivered <= 0 {
		t.Fatalf("throughput across halves: %+v %v", tp, err)
	}
	lat, err := runLatency(ctx, splitSystem(srv.Addr, srv.Addr, tr, 2, 4<<10, 4<<10), tr, 500, 32, 50*time.Millisecond, 200*time.Millisecond, nil)
	if err != nil || lat.Lat.Count == 0 || lat.Lost != 0 {
		t.Fatalf("latency across halves: %d measured, %d lost, %v", lat.Lat.Count, lat.Lost, err)
	}

	cfg := DefaultConfig()
	cfg.ClientsPerWorker, cfg.SrcAddrs, cfg.Timeout = 12, 3, 30*time.Second
	nodes := []*target{srv, srv, srv}
	res, err := runScale(ctx, cfg, nodes, 31, 7, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sampled.Senders != 7 || res.Sampled.Recv != 7 || res.Full.Senders != 31 || res.Full.Recv != 31 || res.Full.Lat.Count != 31 {
		t.Fatalf("rounds: sampled %+v, full %+v", res.Sampled, res.Full)
	}
}

// TestClusterRun runs every workload that has runs of its own with
// --cluster at toy sizes against real three-node clusters (this test
// binary re-executed as each node). (web ignores --cluster: it weighs
// the WebSocket front end of one server.)
// Starting a cluster takes 5-10 s, and the run starts five, so it is
// opt-in: CHATBENCH_CLUSTER_TEST=1.
func TestClusterRun(t *testing.T) {
	if os.Getenv("CHATBENCH_CLUSTER_TEST") == "" {
		t.Skip("starts five three-node clusters (about a minute); set CHATBENCH_CLUSTER_TEST=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Cluster = 3
	cfg.Workloads = nil
	for _, w := range workloads {
		if w.clusterRuns != nil {
			cfg.Workloads = append(cfg.Workloads, w.name)
		}
	}
	cfg.Clients, cfg.LatClients, cfg.Rates = []int{6}, 8, []int{500}
	cfg.Duration, cfg.Warmup, cfg.Timeout = 300*time.Millisecond, 100*time.Millisecond, time.Minute
	cfg.ScaleClients, cfg.RoundSample, cfg.ClientsPerWorker = []int{60}, 9, 25
	cfg.FileSizes = []int64{3<<20 + 7}
	seen := map[string]bool{}
	for _, r := range runCSV(t, ctx, cfg) {
		w, params, metric, ours, base := r[0], r[1], r[2], r[4], r[6]
		seen[w] = true
		if !strings.Contains(params, "cluster=3") || r[5] != singleBaseline {
			t.Fatalf("row %q is not a cluster row beside one node", r)
		}
		if (metric == "delivered" || metric == "transfer" || metric == "sampled round: delivered") && (ours == "" || ours == "0" || base == "" || base == "0") {
			t.Fatalf("row %q: nothing delivered", r)
		}
		if metric == "sampled round: delivered" && ours != "9" {
			t.Fatalf("sampled round: %s of 9 delivered", ours)
		}
	}
	for _, w := range cfg.Workloads {
		if !seen[w] {
			t.Errorf("no %s rows", w)
		}
	}
}
