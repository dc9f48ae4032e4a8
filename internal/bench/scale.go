package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/protocol"
)

// WorkerCommand is the hidden first argument that makes the tool a scale
// worker: a process holding a share of the scale workload's connections,
// so that no process needs more file descriptors than its limit allows.
const WorkerCommand = "_worker"

// clientRange is what the scale and storm workers share on their command
// lines: the clients they run and how they join.
type clientRange struct {
	Prefix   string // the clients are Prefix<First> ... Prefix<First+Count-1>
	First    int
	Count    int
	SrcAddrs int           // source addresses to spread the connections over (srcIP)
	JoinRate float64       // joins per second of the worker's clients; 0: as fast as they go
	Timeout  time.Duration // bound on the worker's phases
}

func (c clientRange) args() []string {
	return []string{
		"-prefix", c.Prefix, "-first", strconv.Itoa(c.First), "-count", strconv.Itoa(c.Count),
		"-src-addrs", strconv.Itoa(c.SrcAddrs), "-join-rate", strconv.FormatFloat(c.JoinRate, 'g', -1, 64),
		"-timeout", c.Timeout.String(),
	}
}

// flags adds the flags of args to fs.
func (c *clientRange) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Prefix, "prefix", "", "")
	fs.IntVar(&c.First, "first", 0, "")
	fs.IntVar(&c.Count, "count", 0, "")
	fs.IntVar(&c.SrcAddrs, "src-addrs", 1, "")
	fs.Float64Var(&c.JoinRate, "join-rate", 0, "")
	fs.DurationVar(&c.Timeout, "timeout", time.Minute, "")
}

// check checks what the flags say alone; each worker checks First and
// Count against its own bounds.
func (c clientRange) check() error {
	switch {
	case c.SrcAddrs < 1 || c.SrcAddrs > 250:
		return fmt.Errorf("bad -src-addrs %d", c.SrcAddrs)
	case c.Prefix == "" || c.Timeout <= 0 || c.Timeout > maxDuration:
		return errors.New("bad -prefix or -timeout")
	case c.JoinRate < 0 || math.IsNaN(c.JoinRate) || math.IsInf(c.JoinRate, 0):
		return fmt.Errorf("bad -join-rate %v", c.JoinRate)
	}
	return nil
}

// parseSpec parses the flags of a worker's command line into what its
// flags function adds to a flag set, and checks them with check.
func parseSpec(command string, args []string, flags func(*flag.FlagSet), check func() error) error {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return check()
}

// workerSpec is what a scale worker is told on its command line.
type workerSpec struct {
	Addrs []string // the servers; client g joins Addrs[g % len(Addrs)]
	clientRange
	Total     int // clients of all workers
	Size      int
	Heartbeat bool // the clients ask for heartbeat (scaleidle.go)
}

func (w workerSpec) args() []string {
	return append([]string{"-addr", strings.Join(w.Addrs, ","), "-total", strconv.Itoa(w.Total), "-size", strconv.Itoa(w.Size), "-heartbeat=" + strconv.FormatBool(w.Heartbeat)}, w.clientRange.args()...)
}

func parseWorkerSpec(args []string) (workerSpec, error) {
	var w workerSpec
	var addrs string
	err := parseSpec(WorkerCommand, args, func(fs *flag.FlagSet) {
		fs.StringVar(&addrs, "addr", "", "")
		fs.IntVar(&w.Total, "total", 0, "")
		fs.IntVar(&w.Size, "size", 32, "")
		fs.BoolVar(&w.Heartbeat, "heartbeat", false, "")
		w.clientRange.flags(fs)
	}, func() error {
		w.Addrs = strings.Split(addrs, ",")
		for _, a := range w.Addrs {
			if CheckLoopback(a) != nil {
				return fmt.Errorf("-addr %q is not a loopback address", a)
			}
		}
		switch {
		case w.Count < 1 || w.First < 0 || w.First+w.Count > w.Total || w.Total > maxStampIdx:
			return fmt.Errorf("bad -first %d -count %d -total %d", w.First, w.Count, w.Total)
		case w.Size < MinTextSize || w.Size > protocol.MaxTextBytes:
			return fmt.Errorf("bad -size %d", w.Size)
		}
		return w.clientRange.check()
	})
	return w, err
}

// RunWorker runs a scale worker. It connects and joins its clients, then
// prints `joined <ok> <failed> <nanoseconds>`. A round takes two lines on
// stdin: `round [K]` readies the worker for a round in which K users of
// all workers' (every one if K is absent or 0; see roundSenders) each send
// one message to their roundPeer, and it answers `ready`; then `go` (sent
// once every worker is ready, so that no message comes before its
// recipient's worker counts) starts it, and the worker prints
// `round <received> <histogram>` once its clients have received theirs.
// `quit` or the end of stdin ends it.
func RunWorker(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	spec, err := parseWorkerSpec(args)
	if err != nil {
		fmt.Fprintf(stderr, "chatbench %s: %v\n", WorkerCommand, err)
		return 1
	}
	w := &worker{spec: spec, clients: make([]*chatClient, spec.Count), gotAll: make(chan struct{}, 1)}
	code := w.run(stdin, stdout, stderr)
	w.close()
	return code
}

type worker struct {
	spec    workerSpec
	clients []*chatClient
	wg      sync.WaitGroup

	mu       sync.Mutex
	hist     Histogram // latencies of the current round; guarded by mu
	received int       // messages of the current round; guarded by mu
	expected int       // messages its clients get in the current round; guarded by mu
	failed   atomic.Int64
	gotAll   chan struct{}
}

func (w *worker) name(g int) string { return w.spec.Prefix + strconv.Itoa(g) }

func (w *worker) run(stdin io.Reader, stdout, stderr io.Writer) int {
	s := w.spec
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	start := time.Now()
	var dialFailed atomic.Int64
	parallel(s.Count, 64, func(i int) error {
		if s.JoinRate > 0 {
			due := start.Add(time.Duration(float64(i) / s.JoinRate * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
		g := s.First + i
		c, err := dialChat(ctx, s.Addrs[g%len(s.Addrs)], srcIP(g, s.SrcAddrs), w.name(g), 256, 256, s.features()...)
		if err != nil {
			if dialFailed.Add(1) == 1 {
				fmt.Fprintf(os.Stderr, "chatbench worker: %v\n", err)
			}
			return nil
		}
		w.clients[i] = c
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			err := c.readLoop(handlers{msg: w.onMessage})
			var es errServer
			if errors.As(err, &es) {
				w.failed.Add(1)
			}
		}()
		return nil
	})
	fmt.Fprintf(stdout, "joined %d %d %d\n", int64(s.Count)-dialFailed.Load(), dialFailed.Load(), time.Since(start))

	sc := bufio.NewScanner(stdin)
	senders := roundSenders(s.Total, 0)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "round":
			k := 0
			if arg != "" {
				var err error
				if k, err = strconv.Atoi(arg); err != nil || k < 0 || k > s.Total {
					fmt.Fprintf(stderr, "chatbench %s: bad round %q\n", WorkerCommand, arg)
					return 1
				}
			}
			senders = w.prepare(k)
			fmt.Fprintln(stdout, "ready")
		case "go":
			line, err := w.round(senders)
			if err != nil {
				fmt.Fprintf(stderr, "chatbench %s: %v\n", WorkerCommand, err)
				return 1
			}
			fmt.Fprintf(stdout, "%s\n", line)
		case "quit":
			return 0
		}
	}
	return 0
}

// onMessage records a round message's latency (stamps are wall-clock
// nanoseconds, since sender and receiver are in different processes).
func (w *worker) onMessage(text []byte) {
	_, t, ok := readStamp(text)
	lat := time.Now().UnixNano() - t
	w.mu.Lock()
	if ok {
		w.hist.Record(lat)
	}
	w.received++
	all := w.received == w.expected
	w.mu.Unlock()
	if all {
		select {
		case w.gotAll <- struct{}{}:
		default:
		}
	}
}

// prepare readies the worker for a round of k senders and returns them.
func (w *worker) prepare(k int) []int {
	s := w.spec
	senders := roundSenders(s.Total, k)
	w.mu.Lock()
	w.hist = Histogram{}
	w.received = 0
	w.expected = roundReceipts(senders, s.First, s.Count, s.Total, len(s.Addrs))
	w.mu.Unlock()
	select { // a token left by the last round
	case <-w.gotAll:
	default:
	}
	return senders
}

// round sends one message from each of senders that is this worker's
// client to its peer, and waits for its own clients' messages.
func (w *worker) round(senders []int) (string, error) {
	s := w.spec
	nodes := len(s.Addrs)
	w.mu.Lock()
	none := w.expected == 0
	w.mu.Unlock()
	var mine []int
	for _, g := range senders {
		if g >= s.First && g < s.First+s.Count {
			mine = append(mine, g)
		}
	}
	parallel(len(mine), 8, func(j int) error {
		g := mine[j]
		c := w.clients[g-s.First]
		if c == nil {
			return nil
		}
		text := newText(s.Size)
		putStamp(text, g%maxStampIdx, time.Now().UnixNano())
		if err := c.writeMessage([]string{w.name(roundPeer(g, s.Total, nodes))}, text); err == nil {
			c.w.Flush()
		}
		return nil
	})
	if !none {
		select {
		case <-w.gotAll:
		case <-time.After(s.Timeout):
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := w.hist.MarshalText()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("round %d %s", w.received, h), nil
}

// roundSenders returns the k users of total, spread evenly, that send in a
// round: every user when k is 0 or total.
func roundSenders(total, k int) []int {
	if k <= 0 || k > total {
		k = total
	}
	out := make([]int, k)
	for j := range out {
		out[j] = j * total / k
	}
	return out
}

// roundPeer returns the user that user g sends to in a round: the next
// one, skipping those on g's own node. Users join nodes round-robin (user
// g joins node g % nodes), so with several nodes every message of a round
// crosses from one node to another.
func roundPeer(g, total, nodes int) int {
	p := (g + 1) % total
	for nodes > 1 && p != g && p%nodes == g%nodes {
		p = (p + 1) % total
	}
	return p
}

// roundReceipts returns how many of a round's messages, sent by senders,
// go to the users first to first+count-1.
func roundReceipts(senders []int, first, count, total, nodes int) int {
	n := 0
	for _, g := range senders {
		if p := roundPeer(g, total, nodes); p >= first && p < first+count {
			n++
		}
	}
	return n
}

func (w *worker) close() {
	for _, c := range w.clients {
		if c != nil {
			c.nc.Close()
		}
	}
	w.wg.Wait()
}

// workerStop is how long a worker has to end after quit.
const workerStop = 15 * time.Second

// startWorker starts this tool again as a worker (command) with args.
func startWorker(command string, args []string, stderr io.Writer) (*childProc, error) {
	bin, args, err := orSelf("", command, args)
	if err != nil {
		return nil, err
	}
	return startChild(bin, args, stderr, 4)
}

// scaleResult is one scale run.
type scaleResult struct {
	Clients  int
	JoinSecs float64 // to connect and join every client, until every node lists them all
	// The servers' RSS, one per node: before any client, with all
	// clients joined and idle, and after the rounds.
	RSSBase, RSSIdle, RSSRound []int64
	Weighed                    bool       // some server's RSS could be read (it runs in a process of its own)
	IdleCPU                    float64    // the servers' CPU time per second while held idle (--scale-idle); NaN if not measured
	RSSIdleEnd                 []int64    // the servers' RSS at the end of that
	Sampled                    scaleRound // the sampled round, if there was one
	Full                       scaleRound // one message from every client
}

// scaleRound is one round of messages of a scale run.
type scaleRound struct {
	Senders int
	Secs    float64 // from the start until every message was received
	Recv    int64
	Lat     Summary
}

// clientsOn returns how many of n clients join node i of k (client g
// joins node g % k).
func clientsOn(i, k, n int) int { return (n - i + k - 1) / k }

// perClientKiB returns the largest growth of RSS, from base to now, over
// the nodes, per client of that node, in KiB.
func perClientKiB(base, now []int64, n int) float64 {
	worst := math.NaN()
	for i := range base {
		v := float64(now[i]-base[i]) / 1024 / float64(clientsOn(i, len(base), n))
		if math.IsNaN(worst) || v > worst {
			worst = v
		}
	}
	return worst
}

// runScale joins n idle clients to the servers nodes (one server, or a
// cluster's nodes; each must be in its own process, PID != 0, for its
// RSS), client g to node g % len(nodes), spread over worker processes.
// Then, if sample > 0, sample of them each send one message to a user
// (on another node, if there are several), and then every client does.
func runScale(ctx context.Context, cfg Config, nodes []*target, n, sample int, stderr io.Writer) (scaleResult, error) {
	k := len(nodes)
	res := scaleResult{Clients: n, RSSBase: make([]int64, k), RSSIdle: make([]int64, k), RSSRound: make([]int64, k), RSSIdleEnd: make([]int64, k)}
	for i, t := range nodes {
		// A node also holds its engine's routes and files.
		need := int64(clientsOn(i, k, n)) + 32
		if k > 1 {
			need += 64
		}
		if err := checkFDs(t, need, fmt.Sprintf("%d clients on one server", clientsOn(i, k, n)), " (raise `ulimit -n`, run fewer clients, or more nodes)"); err != nil {
			return res, err
		}
	}
	if err := weigh(nodes, res.RSSBase); err != nil {
		return res, err
	}
	prefix := runPrefix()
	start := time.Now()
	workers, err := startScaleWorkers(cfg, nodes, prefix, n, stderr)
	defer func() { stopAll(workers, workerStop) }()
	if err != nil {
		return res, err
	}
	// A probe client on every node checks that its list shows every
	// worker's client (and every probe).
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var probes clientSet
	defer probes.close()
	if err := dialProbes(pctx, &probes, nodes, prefix+"probe"); err != nil {
		return res, err
	}
	err = parallel(k, k, func(i int) error {
		report := func(seen int) {
			fmt.Fprintf(stderr, "  %s lists %d of %d users after %v\n", nodes[i].describe(), seen, n+k, time.Since(start).Round(time.Second))
		}
		if err := waitJoined(pctx, probes.clients[i], prefix, n+k, report); err != nil {
			return fmt.Errorf("%s: %w", nodes[i].describe(), err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.JoinSecs = time.Since(start).Seconds()

	// Let the servers settle, then weigh them idle.
	res.Weighed = slices.ContainsFunc(nodes, func(t *target) bool { return t.PID != 0 })
	if res.Weighed {
		time.Sleep(2 * time.Second)
	}
	if err := weigh(nodes, res.RSSIdle); err != nil {
		return res, err
	}
	if res.IdleCPU, err = holdIdle(cfg, nodes, res.RSSIdleEnd); err != nil {
		return res, err
	}
	if os.Getenv(ServerMemProfileEnv) != "" && cfg.ServerBin == "" && cfg.ServerAddr == "" {
		for _, t := range nodes {
			syscall.Kill(t.PID, syscall.SIGUSR1)
		}
		time.Sleep(2 * time.Second)
	}

	if sample > 0 {
		if res.Sampled, err = scaleRoundOf(workers, sample, n, cfg.Timeout); err != nil {
			return res, err
		}
	}
	if res.Full, err = scaleRoundOf(workers, 0, n, cfg.Timeout); err != nil {
		return res, err
	}
	if res.Weighed {
		time.Sleep(500 * time.Millisecond)
	}
	if err := weigh(nodes, res.RSSRound); err != nil {
		return res, err
	}
	for _, r := range []scaleRound{res.Sampled, res.Full} {
		if r.Recv != int64(r.Senders) {
			return res, fmt.Errorf("round of %d senders: %d messages arrived", r.Senders, r.Recv)
		}
	}
	return res, nil
}

// weigh reads the RSS of each of nodes that runs in its own process into
// the same place of into.
func weigh(nodes []*target, into []int64) error {
	for i, t := range nodes {
		if t.PID == 0 {
			continue
		}
		v, err := readRSS(t.PID)
		if err != nil {
			return err
		}
		into[i] = v
	}
	return nil
}

// startScaleWorkers starts the workers that join n clients named prefix
// and their index to nodes, cfg.ClientsPerWorker at most each, and waits
// until each has joined all of its clients. It returns the workers it
// started, also with an error.
func startScaleWorkers(cfg Config, nodes []*target, prefix string, n int, stderr io.Writer) ([]*childProc, error) {
	addrs := make([]string, len(nodes))
	srcAddrs := cfg.SrcAddrs
	for i, t := range nodes {
		addrs[i] = t.Addr
		if !canUseSrc(t.Addr) {
			srcAddrs = 1
		}
	}
	var workers []*childProc
	for first := 0; first < n; first += cfg.ClientsPerWorker {
		count := min(cfg.ClientsPerWorker, n-first)
		spec := workerSpec{Addrs: addrs, Total: n, Size: 32, Heartbeat: cfg.ScaleHeartbeat, clientRange: clientRange{Prefix: prefix, First: first, Count: count,
			SrcAddrs: srcAddrs, Timeout: cfg.Timeout, JoinRate: cfg.JoinRate * float64(count) / float64(n)}}
		w, err := startWorker(WorkerCommand, spec.args(), stderr)
		if err != nil {
			return workers, err
		}
		workers = append(workers, w)
	}
	for _, w := range workers {
		f, err := w.expect("joined", cfg.Timeout)
		if err != nil {
			return workers, err
		}
		if len(f) != 2 || !strings.HasPrefix(f[1], "0 ") {
			return workers, fmt.Errorf("a worker could not connect all its clients: joined %s", strings.Join(f, " "))
		}
	}
	return workers, nil
}

// checkFDs returns an error if t, a server in its own process, may open
// fewer files than need; what names what needs them, and hint, if not
// empty, ends the error.
func checkFDs(t *target, need int64, what, hint string) error {
	if t.PID == 0 {
		return nil
	}
	if lim, err := openFilesLimit(t.PID); err == nil && lim >= 0 && need > lim {
		return fmt.Errorf("%s need %d file descriptors in its process, whose limit is %d%s", what, need, lim, hint)
	}
	return nil
}

// scaleRoundOf runs one round of k senders (0: every client) over the
// workers.
func scaleRoundOf(workers []*childProc, k, n int, timeout time.Duration) (scaleRound, error) {
	r := scaleRound{Senders: len(roundSenders(n, k))}
	cmd := "round " + strconv.Itoa(k)
	for _, w := range workers {
		if err := w.send(cmd); err != nil {
			return r, err
		}
	}
	for _, w := range workers {
		if _, err := w.expect("ready", timeout); err != nil {
			return r, err
		}
	}
	t0 := time.Now()
	for _, w := range workers {
		if err := w.send("go"); err != nil {
			return r, err
		}
	}
	var all Histogram
	for _, w := range workers {
		f, err := w.expect("round", timeout+10*time.Second)
		if err != nil {
			return r, err
		}
		if len(f) != 2 {
			return r, fmt.Errorf("worker's round line has %d fields", len(f))
		}
		got, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return r, err
		}
		r.Recv += got
		var h Histogram
		if err := h.UnmarshalText([]byte(f[1])); err != nil {
			return r, err
		}
		all.Merge(&h)
	}
	r.Secs = time.Since(t0).Seconds()
	r.Lat = all.Summary()
	return r, nil
}

// dialProbes joins a probe client to set on each of nodes, in order,
// named prefix and its index.
func dialProbes(ctx context.Context, set *clientSet, nodes []*target, prefix string) error {
	for i, t := range nodes {
		if _, err := set.dial(ctx, t.Addr, prefix+strconv.Itoa(i), 64<<10, 4<<10, handlers{}); err != nil {
			return err
		}
	}
	return nil
}

// The scale workload.

func scaleFlags(fs *pflag.FlagSet, c *Config) {
	fs.Var(intList{&c.ScaleClients, false}, "scale-clients", "scale: joined idle clients (N)")
	fs.IntVar(&c.ClientsPerWorker, "clients-per-worker", c.ClientsPerWorker, "scale: most client connections per worker process")
	fs.IntVar(&c.SrcAddrs, "src-addrs", c.SrcAddrs, "scale: source addresses 127.0.0.2 and up to spread connections over")
	fs.Float64Var(&c.JoinRate, "join-rate", 0, "scale: joins per second, all clients together (0: as fast as they connect)")
	fs.IntVar(&c.RoundSample, "round-sample", c.RoundSample, "scale with --cluster: users that each send one message to a user on another node")
	scaleIdleFlags(fs, c)
}

func scaleRuns(cfg Config, stderr io.Writer) iter.Seq[job] {
	return jobs(slices.Values(cfg.ScaleClients), func(n int) job {
		return trial[scaleResult]{
			workload: Scale,
			params:   fmt.Sprintf("clients=%d src-addrs=%d clients-per-worker=%d%s%s %s %s", n, cfg.SrcAddrs, cfg.ClientsPerWorker, joinRateParam(cfg), idleParam(cfg), ownParam(cfg), loadParam()),
			ours: side[scaleResult]{servers: ownServer(cfg, n+16), measure: func(ctx context.Context, nodes []*target) (scaleResult, error) {
				return runScale(ctx, cfg, nodes, n, 0, stderr)
			}},
			rows: func(row rowFunc, res, _ scaleResult) []Row {
				nan := math.NaN()
				rss := func(v int64) float64 {
					if !res.Weighed {
						return nan
					}
					return float64(v)
				}
				return []Row{
					row("joined clients", "clients", float64(n), nan, ""),
					row("connect and join", "s", res.JoinSecs, nan, ""),
					row("server RSS before clients", "MiB", rss(res.RSSBase[0])/(1<<20), nan, ""),
					row("server RSS, all idle", "MiB", rss(res.RSSIdle[0])/(1<<20), nan, ""),
					row("server RSS per idle client", "KiB", rss(res.RSSIdle[0]-res.RSSBase[0])/1024/float64(n), nan, "<= 16"),
					row("server CPU while idle (--scale-idle)", "%", 100*res.IdleCPU, nan, ""),
					row("server RSS per idle client after it", "KiB", rss(res.RSSIdleEnd[0]-res.RSSBase[0])/1024/float64(n), nan, ""),
					row("round: one message from each", "s", res.Full.Secs, nan, ""),
					row("round delivered", "msgs/s", float64(res.Full.Recv)/res.Full.Secs, nan, ""),
					row("round latency p50", "ms", ms(res.Full.Lat.P50), nan, ""),
					row("round latency p99", "ms", ms(res.Full.Lat.P99), nan, ""),
					row("server RSS per client after round", "KiB", rss(res.RSSRound[0]-res.RSSBase[0])/1024/float64(n), nan, ""),
				}
			},
		}
	})
}

func clusterScaleRuns(cfg Config, stderr io.Writer) iter.Seq[job] {
	k := cfg.Cluster
	return jobs(slices.Values(cfg.ScaleClients), func(n int) job {
		share := clientsOn(0, k, n) // the single node's clients: one node's share
		params := fmt.Sprintf("clients=%d (single node: %d) src-addrs=%d clients-per-worker=%d%s %s", n, share, cfg.SrcAddrs, cfg.ClientsPerWorker, joinRateParam(cfg), clusterParams(cfg))
		return clusterTrial(cfg, Scale, params, n+k+16, func(ctx context.Context, nodes []*target) (scaleResult, error) {
			if len(nodes) == 1 {
				return runScale(ctx, cfg, nodes, share, min(cfg.RoundSample, share), stderr)
			}
			return runScale(ctx, cfg, nodes, n, cfg.RoundSample, stderr)
		}, func(row rowFunc, ours, single scaleResult) []Row {
			largest := func(v []int64) float64 {
				if len(v) == 0 {
					return math.NaN()
				}
				return float64(slices.Max(v)) / (1 << 20)
			}
			sum := func(v []int64) float64 {
				var t int64
				for _, x := range v {
					t += x
				}
				return float64(t) / (1 << 20)
			}
			perIdle := func(r scaleResult) float64 { return perClientKiB(r.RSSBase, r.RSSIdle, r.Clients) }
			perAfter := func(r scaleResult) float64 { return perClientKiB(r.RSSBase, r.RSSRound, r.Clients) }
			sampled := strconv.Itoa(ours.Sampled.Senders)
			return []Row{
				row("joined clients", "clients", float64(ours.Clients), float64(single.Clients), ""),
				row("clients on the fullest node", "clients", float64(share), float64(single.Clients), ""),
				row("connect and join, listed on every node", "s", ours.JoinSecs, single.JoinSecs, ""),
				row("server RSS before clients (largest node)", "MiB", largest(ours.RSSBase), largest(single.RSSBase), ""),
				row("server RSS, all idle (largest node)", "MiB", largest(ours.RSSIdle), largest(single.RSSIdle), ""),
				row("server RSS, all idle (all nodes)", "MiB", sum(ours.RSSIdle), sum(single.RSSIdle), ""),
				row("server RSS per idle client (largest)", "KiB", perIdle(ours), perIdle(single), "<= 16"),
				row("sampled round: messages sent", "msgs", float64(ours.Sampled.Senders), float64(single.Sampled.Senders), ""),
				row("sampled round: delivered", "msgs", float64(ours.Sampled.Recv), float64(single.Sampled.Recv), "all "+sampled),
				row("sampled round: time", "s", ours.Sampled.Secs, single.Sampled.Secs, ""),
				row("sampled round: latency p50", "ms", ms(ours.Sampled.Lat.P50), ms(single.Sampled.Lat.P50), ""),
				row("sampled round: latency p99", "ms", ms(ours.Sampled.Lat.P99), ms(single.Sampled.Lat.P99), ""),
				row("round: one message from each", "s", ours.Full.Secs, single.Full.Secs, ""),
				row("round delivered", "msgs/s", float64(ours.Full.Recv)/ours.Full.Secs, float64(single.Full.Recv)/single.Full.Secs, ""),
				row("round latency p50", "ms", ms(ours.Full.Lat.P50), ms(single.Full.Lat.P50), ""),
				row("round latency p99", "ms", ms(ours.Full.Lat.P99), ms(single.Full.Lat.P99), ""),
				row("server RSS per client after rounds (largest)", "KiB", perAfter(ours), perAfter(single), ""),
			}
		})
	})
}
