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
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/protocol"
)

// Storm is the workload of issue 21: N joins fired at once at each node
// (or at one server), as after a node restart or a network flap.
const Storm = "storm"

// StormWorkerCommand is the hidden first argument that makes the tool a
// storm worker: a process that fires one node's joins.
const StormWorkerCommand = "_storm"

// stormSpec is what a storm worker is told on its command line.
type stormSpec struct {
	Addr string
	clientRange
	Dials int // dials under way at once
}

func (s stormSpec) args() []string {
	return append([]string{"-addr", s.Addr, "-dials", strconv.Itoa(s.Dials)}, s.clientRange.args()...)
}

func parseStormSpec(args []string) (stormSpec, error) {
	var s stormSpec
	err := parseSpec(StormWorkerCommand, args, func(fs *flag.FlagSet) {
		fs.StringVar(&s.Addr, "addr", "", "")
		fs.IntVar(&s.Dials, "dials", 256, "")
		s.clientRange.flags(fs)
	}, func() error {
		switch {
		case CheckLoopback(s.Addr) != nil:
			return fmt.Errorf("-addr %q is not a loopback address", s.Addr)
		case s.Count < 1 || s.First < 0 || s.Count > maxClients:
			return fmt.Errorf("bad -first %d -count %d", s.First, s.Count)
		case s.Dials < 1 || s.Dials > 4096:
			return fmt.Errorf("bad -dials %d", s.Dials)
		}
		return s.clientRange.check()
	})
	return s, err
}

// The outcomes of one join in a storm.
const (
	outAdmitted  = iota // its own message came back: it is in
	outFull             // err_server_full
	outTaken            // err_username_unavailable
	outOther            // another err_* frame
	outDropped          // the connection ended without a frame
	outUndecided        // nothing by the worker's timeout
	outNoConnect        // the connection could not be made
	numOutcomes
)

// stormReport is a worker's account of one storm: the outcomes, when the
// first join was sent and the last answer came (wall clock, Unix ns: the
// workers are processes of their own), and the latencies of the admitted.
type stormReport struct {
	Counts      [numOutcomes]int64
	First, Last int64
	Lat         Histogram
}

func (r stormReport) MarshalText() ([]byte, error) {
	h, err := r.Lat.MarshalText()
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, c := range r.Counts {
		b = strconv.AppendInt(b, c, 10)
		b = append(b, ' ')
	}
	b = fmt.Appendf(b, "%d %d %s", r.First, r.Last, h)
	return b, nil
}

func (r *stormReport) UnmarshalText(b []byte) error {
	f := strings.SplitN(string(b), " ", numOutcomes+3)
	if len(f) != numOutcomes+3 {
		return fmt.Errorf("storm report of %d fields", len(f))
	}
	var err error
	for i := range r.Counts {
		if r.Counts[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return err
		}
	}
	if r.First, err = strconv.ParseInt(f[numOutcomes], 10, 64); err != nil {
		return err
	}
	if r.Last, err = strconv.ParseInt(f[numOutcomes+1], 10, 64); err != nil {
		return err
	}
	return r.Lat.UnmarshalText([]byte(f[numOutcomes+2]))
}

// merge adds o to r.
func (r *stormReport) merge(o stormReport) {
	for i, c := range o.Counts {
		r.Counts[i] += c
	}
	if r.First == 0 || o.First != 0 && o.First < r.First {
		r.First = o.First
	}
	r.Last = max(r.Last, o.Last)
	r.Lat.Merge(&o.Lat)
}

// RunStormWorker runs a storm worker. On `join` it connects all its
// clients, as fast as -dials connections at once allow, each sending its
// join and then a message to itself at once: the message comes back only
// once the join is decided and admitted, so its round trip is the join's
// latency. It prints `joined <report>` once every join is decided (or the
// timeout passed). On `leave` it closes every connection at once and
// prints `left`. `quit` or the end of stdin ends it.
func RunStormWorker(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	spec, err := parseStormSpec(args)
	if err != nil {
		fmt.Fprintf(stderr, "chatbench %s: %v\n", StormWorkerCommand, err)
		return 1
	}
	w := &stormWorker{spec: spec, conns: make([]net.Conn, spec.Count)}
	defer w.leave()
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "join":
			rep := w.join()
			b, err := rep.MarshalText()
			if err != nil {
				fmt.Fprintf(stderr, "chatbench %s: %v\n", StormWorkerCommand, err)
				return 1
			}
			fmt.Fprintf(stdout, "joined %s\n", b)
		case "leave":
			w.leave()
			fmt.Fprintln(stdout, "left")
		case "quit":
			return 0
		}
	}
	return 0
}

type stormWorker struct {
	spec  stormSpec
	conns []net.Conn // the connections of the last join; nil when closed
	wg    sync.WaitGroup
}

func (w *stormWorker) join() stormReport {
	s := w.spec
	var (
		mu    sync.Mutex
		rep   stormReport
		count [numOutcomes]atomic.Int64
	)
	decided := make(chan struct{}, s.Count)
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	start := time.Now()
	rep.First = start.UnixNano()
	parallel(s.Count, s.Dials, func(i int) error {
		if s.JoinRate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / s.JoinRate * float64(time.Second)))))
		}
		g := s.First + i
		name := s.Prefix + strconv.Itoa(g)
		t0 := time.Now()
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: srcIP(g, s.SrcAddrs)}}
		if !canUseSrc(s.Addr) {
			d.LocalAddr = nil
		}
		nc, err := d.DialContext(ctx, "tcp", s.Addr)
		if err != nil {
			if count[outNoConnect].Add(1) == 1 {
				fmt.Fprintf(os.Stderr, "chatbench %s: %v\n", StormWorkerCommand, err)
			}
			decided <- struct{}{}
			return nil
		}
		w.conns[i] = nc
		text := newText(MinTextSize)
		putStamp(text, g%maxStampIdx, 0)
		frames := protocol.AppendJoin(nil, protocol.Join, name)
		frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{name}, text)
		if _, err := nc.Write(frames); err != nil {
			count[outDropped].Add(1)
			decided <- struct{}{}
			return nil
		}
		w.wg.Go(func() {
			out := awaitJoin(nc)
			lat := time.Since(t0)
			count[out].Add(1)
			if out == outAdmitted {
				mu.Lock()
				rep.Lat.Record(int64(lat))
				rep.Last = max(rep.Last, time.Now().UnixNano())
				mu.Unlock()
			}
			decided <- struct{}{}
			if out == outAdmitted {
				io.Copy(io.Discard, nc) // until it is closed
			}
		})
		return nil
	})
	for range s.Count {
		select {
		case <-decided:
			continue
		case <-ctx.Done():
		}
		break
	}
	mu.Lock()
	defer mu.Unlock()
	var sum int64
	for i := range count {
		rep.Counts[i] = count[i].Load()
		sum += rep.Counts[i]
	}
	rep.Counts[outUndecided] += int64(s.Count) - sum
	return rep
}

// awaitJoin reads what the server answers a join followed by a message to
// oneself, and returns the join's outcome.
func awaitJoin(nc net.Conn) int {
	r := protocol.NewReaderSize(nc, 512)
	for {
		h, err := r.ReadHeader()
		if err != nil {
			return outDropped
		}
		switch h.Type {
		case protocol.ForwardMessage:
			return outAdmitted
		case protocol.ErrServerFull:
			return outFull
		case protocol.ErrUsernameUnavailable:
			return outTaken
		case protocol.ErrUnknownMessage:
			return outOther
		}
		if _, err := r.ReadPayload(nil); err != nil {
			return outDropped
		}
	}
}

// leave closes every connection at once.
func (w *stormWorker) leave() {
	parallel(len(w.conns), 64, func(i int) error {
		if c := w.conns[i]; c != nil {
			c.Close()
			w.conns[i] = nil
		}
		return nil
	})
	w.wg.Wait()
}

// stormRound is one storm: every worker fires its joins at once.
type stormRound struct {
	stormReport
	Secs       float64 // from the first join sent to the last admitted
	ListedSecs float64 // from the first join sent until every node lists every user
	CPU        float64 // the servers' CPU seconds meanwhile (all nodes)
}

// stormResult is one storm run: a storm, everybody leaving at once, and a
// storm of the same names again.
type stormResult struct {
	Joins     int
	First     stormRound
	LeaveSecs float64 // from the leave until no node lists any of them
	Again     stormRound
}

// runStorm fires joins joins at each of the nodes loaded (one worker
// process each), waits until every node lists them all, has them all
// leave at once, waits until no node lists any, and fires the same joins
// again.
func runStorm(ctx context.Context, cfg Config, nodes, loaded []*target, joins int, stderr io.Writer) (stormResult, error) {
	res := stormResult{Joins: joins * len(loaded)}
	for _, t := range loaded {
		if err := checkFDs(t, int64(joins)+128, fmt.Sprintf("%d joins at one server", joins), ""); err != nil {
			return res, err
		}
	}
	prefix := runPrefix()
	users := prefix + "u"
	var workers []*childProc
	defer func() { stopAll(workers, workerStop) }()
	for i, t := range loaded {
		src := cfg.SrcAddrs
		if !canUseSrc(t.Addr) {
			src = 1
		}
		spec := stormSpec{Addr: t.Addr, Dials: cfg.StormDials, clientRange: clientRange{Prefix: users, First: i * joins, Count: joins, SrcAddrs: src,
			JoinRate: cfg.JoinRate / float64(len(loaded)), Timeout: cfg.Timeout}}
		w, err := startWorker(StormWorkerCommand, spec.args(), stderr)
		if err != nil {
			return res, err
		}
		workers = append(workers, w)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*cfg.Timeout)
	defer cancel()
	var probes clientSet
	defer probes.close()
	err := dialProbes(pctx, &probes, nodes, prefix+"p")
	if err != nil {
		return res, err
	}
	cpu := pidsOf(nodes)
	want := res.Joins
	storm := func(what string) (stormRound, error) {
		var r stormRound
		fmt.Fprintf(stderr, "  %s: %d joins at %d node(s) at once ...\n", what, want, len(loaded))
		cpu0 := cpu.seconds()
		for _, w := range workers {
			if err := w.send("join"); err != nil {
				return r, err
			}
		}
		for _, w := range workers {
			f, err := w.expect("joined", cfg.Timeout+30*time.Second)
			if err != nil {
				return r, err
			}
			var rep stormReport
			if err := rep.UnmarshalText([]byte(strings.Join(f, " "))); err != nil {
				return r, err
			}
			r.merge(rep)
		}
		r.CPU = cpu.seconds() - cpu0
		r.Secs = float64(r.Last-r.First) / 1e9
		if r.Counts[outAdmitted] != int64(want) {
			return r, nil // the rows show what went wrong
		}
		if err := waitLists(pctx, nodes, probes.clients, users, func(n int) bool { return n >= want }, stderr); err != nil {
			return r, err
		}
		r.ListedSecs = float64(time.Now().UnixNano()-r.First) / 1e9
		return r, nil
	}
	if res.First, err = storm("storm"); err != nil || res.First.Counts[outAdmitted] != int64(want) {
		return res, err
	}
	fmt.Fprintf(stderr, "  all %d leave at once ...\n", want)
	t0 := time.Now()
	for _, w := range workers {
		if err := w.send("leave"); err != nil {
			return res, err
		}
	}
	if err := waitLists(pctx, nodes, probes.clients, users, func(n int) bool { return n == 0 }, stderr); err != nil {
		return res, err
	}
	res.LeaveSecs = time.Since(t0).Seconds()
	for _, w := range workers {
		if _, err := w.expect("left", cfg.Timeout); err != nil {
			return res, err
		}
	}
	res.Again, err = storm("the same names again")
	return res, err
}

// waitLists waits until the list of every node, asked over its probe,
// holds a number of names starting with prefix that ok accepts.
func waitLists(ctx context.Context, nodes []*target, probes []*chatClient, prefix string, ok func(n int) bool, stderr io.Writer) error {
	start := time.Now()
	return parallel(len(nodes), len(nodes), func(i int) error {
		lastReport := time.Now()
		// A list of 57,000 names is sorted anew after every change: a
		// probe that asks too often weighs on what it measures.
		every := 100 * time.Millisecond
		for {
			n, err := probes[i].countJoined(ctx, prefix)
			if err != nil {
				return fmt.Errorf("%s: %w", nodes[i].describe(), err)
			}
			if ok(n) {
				return nil
			}
			every = 50*time.Millisecond + time.Duration(n)*5*time.Microsecond
			if time.Since(lastReport) >= 5*time.Second {
				fmt.Fprintf(stderr, "  %s lists %d after %v\n", nodes[i].describe(), n, time.Since(start).Round(time.Second))
				lastReport = time.Now()
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s lists %d: %w", nodes[i].describe(), n, ctx.Err())
			case <-time.After(every):
			}
		}
	})
}

// The storm workload.

func stormFlags(fs *pflag.FlagSet, c *Config) {
	fs.Var(intList{&c.StormJoins, false}, "storm-joins", "storm: joins fired at once at each node loaded (N)")
	fs.IntVar(&c.StormOn, "storm-on", 0, "storm with --cluster: fire the joins at this many of the nodes (0: all), e.g. 1 for one node of an idle cluster")
	fs.IntVar(&c.StormMaxClients, "storm-max-clients", 0, "storm: the servers' --max-clients (0: the joins, the probes and 16)")
	fs.IntVar(&c.StormDials, "storm-dials", c.StormDials, "storm: connections being dialed at once per node (each sends its join as soon as it connects)")
}

// stormRuns are the runs of the storm workload: against one server
// spawned, or, with --cluster, against a cluster spawned, with joins at
// --storm-on of its nodes.
func stormRuns(cfg Config, stderr io.Writer) iter.Seq[job] {
	k := max(cfg.Cluster, 1)
	on := cfg.StormOn
	if on == 0 {
		on = k
	}
	return jobs(slices.Values(cfg.StormJoins), func(joins int) job {
		maxc := cfg.StormMaxClients
		if maxc == 0 {
			maxc = joins*on + k + 16
		}
		return trial[stormResult]{
			workload: Storm,
			params: fmt.Sprintf("joins=%d per node at %d of %d node(s) max-clients=%d dials=%d src-addrs=%d%s %s %s",
				joins, on, k, maxc, cfg.StormDials, cfg.SrcAddrs, joinRateParam(cfg), ownParam(cfg), loadParam()),
			ours: side[stormResult]{servers: spawned(cfg, k, maxc), measure: func(ctx context.Context, nodes []*target) (stormResult, error) {
				res, err := runStorm(ctx, cfg, nodes, nodes[:on], joins, stderr)
				if err == nil && (res.First.Counts[outAdmitted] != int64(res.Joins) || res.Again.Counts[outAdmitted] != int64(res.Joins)) {
					err = errors.New("not every join was admitted")
				}
				return res, err
			}},
			partial: true,
			rows:    func(row rowFunc, res, _ stormResult) []Row { return stormRowsOf(row, k, res) },
		}
	})
}

// stormRowsOf returns the figures of a storm run on k nodes.
func stormRowsOf(row rowFunc, k int, res stormResult) []Row {
	nan := math.NaN()
	rows := []Row{row("joins fired at once", "joins", float64(res.Joins), nan, "")}
	round := func(label string, r stormRound) {
		if r.Lat.Count() == 0 && r.Counts == [numOutcomes]int64{} {
			return
		}
		lat := r.Lat.Summary()
		perSec := float64(r.Counts[outAdmitted]) / r.Secs
		writes := nan
		if k > 1 {
			writes = 2 * perSec // a name and a place per join
		}
		rows = append(rows,
			row(label+"admitted", "joins", float64(r.Counts[outAdmitted]), nan, "all"),
			row(label+"refused: server full", "joins", float64(r.Counts[outFull]), nan, "0"),
			row(label+"refused: name unavailable", "joins", float64(r.Counts[outTaken]), nan, "0"),
			row(label+"refused: other err_*", "joins", float64(r.Counts[outOther]), nan, "0"),
			row(label+"dropped without a frame", "joins", float64(r.Counts[outDropped]), nan, "0"),
			row(label+"undecided at the timeout", "joins", float64(r.Counts[outUndecided]), nan, "0"),
			row(label+"could not connect", "joins", float64(r.Counts[outNoConnect]), nan, "0"),
			row(label+"first join to last admitted", "s", r.Secs, nan, "<= 30"),
			row(label+"listed on every node", "s", r.ListedSecs, nan, ""),
			row(label+"admitted per second", "joins/s", perSec, nan, ""),
			row(label+"registry writes (2 per join)", "writes/s", writes, nan, ""),
			row(label+"join latency p50", "ms", ms(lat.P50), nan, ""),
			row(label+"join latency p90", "ms", ms(lat.P90), nan, ""),
			row(label+"join latency p99", "ms", ms(lat.P99), nan, ""),
			row(label+"join latency max", "ms", ms(lat.Max), nan, ""),
			row(label+"server CPU per join (all nodes)", "us", r.CPU/float64(r.Counts[outAdmitted])*1e6, nan, ""),
		)
	}
	round("", res.First)
	if res.LeaveSecs > 0 {
		rows = append(rows, row("all leave at once: gone from every list", "s", res.LeaveSecs, nan, "<= 30"))
	}
	round("again: ", res.Again)
	return rows
}
