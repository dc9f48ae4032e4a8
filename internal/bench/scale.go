package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// WorkerCommand is the hidden first argument that makes the tool a scale
// worker: a process holding a share of the scale workload's connections,
// so that no process needs more file descriptors than its limit allows.
const WorkerCommand = "_worker"

// workerSpec is what a worker is told on its command line.
type workerSpec struct {
	Addr     string
	Prefix   string
	First    int // global index of its first client
	Count    int // its clients
	Total    int // clients of all workers
	SrcAddrs int
	Size     int
	Timeout  time.Duration
}

func (w workerSpec) args() []string {
	return []string{
		"-addr", w.Addr, "-prefix", w.Prefix,
		"-first", strconv.Itoa(w.First), "-count", strconv.Itoa(w.Count), "-total", strconv.Itoa(w.Total),
		"-src-addrs", strconv.Itoa(w.SrcAddrs), "-size", strconv.Itoa(w.Size), "-timeout", w.Timeout.String(),
	}
}

func parseWorkerSpec(args []string) (workerSpec, error) {
	var w workerSpec
	fs := flag.NewFlagSet(WorkerCommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&w.Addr, "addr", "", "")
	fs.StringVar(&w.Prefix, "prefix", "", "")
	fs.IntVar(&w.First, "first", 0, "")
	fs.IntVar(&w.Count, "count", 0, "")
	fs.IntVar(&w.Total, "total", 0, "")
	fs.IntVar(&w.SrcAddrs, "src-addrs", 1, "")
	fs.IntVar(&w.Size, "size", 32, "")
	fs.DurationVar(&w.Timeout, "timeout", time.Minute, "")
	if err := fs.Parse(args); err != nil {
		return w, err
	}
	switch {
	case CheckLoopback(w.Addr) != nil:
		return w, fmt.Errorf("-addr %q is not a loopback address", w.Addr)
	case w.Count < 1 || w.First < 0 || w.First+w.Count > w.Total || w.Total > maxStampIdx:
		return w, fmt.Errorf("bad -first %d -count %d -total %d", w.First, w.Count, w.Total)
	case w.SrcAddrs < 1 || w.SrcAddrs > 250:
		return w, fmt.Errorf("bad -src-addrs %d", w.SrcAddrs)
	case w.Size < MinTextSize || w.Size > protocol.MaxTextBytes:
		return w, fmt.Errorf("bad -size %d", w.Size)
	case w.Prefix == "" || w.Timeout <= 0 || w.Timeout > maxDuration:
		return w, errors.New("bad -prefix or -timeout")
	}
	return w, nil
}

// RunWorker runs a scale worker. It connects and joins its clients, then
// prints `joined <ok> <failed> <nanoseconds>`; then, for each line `round`
// on stdin, every client sends one message to the next client (global
// index + 1) and the worker prints `round <received> <histogram>` once its
// clients have received theirs; `quit` or the end of stdin ends it.
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
		g := s.First + i
		c, err := dialChat(ctx, s.Addr, srcIP(g, s.SrcAddrs), w.name(g), 256, 256)
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
	for sc.Scan() {
		switch sc.Text() {
		case "round":
			line, err := w.round()
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
	all := w.received == w.spec.Count
	w.mu.Unlock()
	if all {
		select {
		case w.gotAll <- struct{}{}:
		default:
		}
	}
}

// round sends one message from each client to the next and waits for its
// own clients' messages.
func (w *worker) round() (string, error) {
	s := w.spec
	w.mu.Lock()
	w.hist = Histogram{}
	w.received = 0
	w.mu.Unlock()
	parallel(s.Count, 8, func(i int) error {
		c := w.clients[i]
		if c == nil {
			return nil
		}
		g := s.First + i
		text := newText(s.Size)
		putStamp(text, g%maxStampIdx, time.Now().UnixNano())
		if err := c.writeMessage([]string{w.name((g + 1) % s.Total)}, text); err == nil {
			c.w.Flush()
		}
		return nil
	})
	select {
	case <-w.gotAll:
	case <-time.After(s.Timeout):
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := w.hist.MarshalText()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("round %d %s", w.received, h), nil
}

func (w *worker) close() {
	for _, c := range w.clients {
		if c != nil {
			c.nc.Close()
		}
	}
	w.wg.Wait()
}

// workerProc is a running worker as seen by the tool.
type workerProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startWorker(spec workerSpec, stderr io.Writer) (*workerProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{WorkerCommand}, spec.args()...)...)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &workerProc{cmd: cmd, in: in, lines: make(chan string, 4)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p, nil
}

// expect waits for the worker's next line, which must start with word.
func (p *workerProc) expect(word string, timeout time.Duration) ([]string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return nil, errors.New("worker exited")
		}
		f := strings.SplitN(line, " ", 3)
		if f[0] != word {
			return nil, fmt.Errorf("worker said %q, want %s", line, word)
		}
		return f[1:], nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("worker said nothing for %v", timeout)
	}
}

func (p *workerProc) stop() {
	io.WriteString(p.in, "quit\n")
	p.in.Close()
	done := make(chan struct{})
	go func() {
		p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// scaleResult is one scale run.
type scaleResult struct {
	Clients     int
	JoinSecs    float64 // time to connect and join all clients
	RSSBase     int64   // server RSS before any client
	RSSIdle     int64   // with all clients joined and idle
	RSSRound    int64   // after the round of messages
	RoundSecs   float64 // from "round" until every message was received
	RoundRecv   int64
	RoundLat    Summary
	ServerFDMax int64
}

// runScale joins n idle clients to the server at t (which must be in its
// own process, t.PID != 0, for its RSS), spread over worker processes,
// then sends one message from each.
func runScale(ctx context.Context, cfg Config, t *target, n int, stderr io.Writer) (scaleResult, error) {
	res := scaleResult{Clients: n}
	if t.PID != 0 {
		lim, err := openFilesLimit(t.PID)
		if err == nil && lim >= 0 && int64(n)+32 > lim {
			return res, fmt.Errorf("%d clients need %d file descriptors in the server process, whose limit is %d (raise `ulimit -n`, or run fewer clients)", n, n+32, lim)
		}
		res.ServerFDMax = lim
		if res.RSSBase, err = readRSS(t.PID); err != nil {
			return res, err
		}
	}
	prefix := runPrefix()
	srcAddrs := cfg.SrcAddrs
	if !canUseSrc(t.Addr) {
		srcAddrs = 1
	}
	var workers []*workerProc
	defer func() {
		for _, w := range workers {
			w.stop()
		}
	}()
	start := time.Now()
	for first := 0; first < n; first += cfg.ClientsPerWorker {
		spec := workerSpec{Addr: t.Addr, Prefix: prefix, First: first, Count: min(cfg.ClientsPerWorker, n-first),
			Total: n, SrcAddrs: srcAddrs, Size: 32, Timeout: cfg.Timeout}
		w, err := startWorker(spec, stderr)
		if err != nil {
			return res, err
		}
		workers = append(workers, w)
	}
	for _, w := range workers {
		f, err := w.expect("joined", cfg.Timeout)
		if err != nil {
			return res, err
		}
		if len(f) != 2 || !strings.HasPrefix(f[1], "0 ") {
			return res, fmt.Errorf("a worker could not connect all its clients: joined %s", strings.Join(f, " "))
		}
	}
	// A probe client checks that every worker's client has joined.
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	probe, err := dialChat(pctx, t.Addr, nil, prefix+"probe", 64<<10, 4<<10)
	if err != nil {
		return res, err
	}
	defer probe.nc.Close()
	go probe.readLoop(handlers{})
	if err := waitJoined(pctx, probe, prefix, n+1); err != nil {
		return res, err
	}
	res.JoinSecs = time.Since(start).Seconds()

	// Let the server settle, then weigh it idle.
	time.Sleep(2 * time.Second)
	if t.PID != 0 {
		if res.RSSIdle, err = readRSS(t.PID); err != nil {
			return res, err
		}
		if os.Getenv(ServerMemProfileEnv) != "" && cfg.ServerBin == "" && cfg.ServerAddr == "" {
			syscall.Kill(t.PID, syscall.SIGUSR1)
			time.Sleep(2 * time.Second)
		}
	}

	t0 := time.Now()
	for _, w := range workers {
		if _, err := io.WriteString(w.in, "round\n"); err != nil {
			return res, err
		}
	}
	var all Histogram
	for _, w := range workers {
		f, err := w.expect("round", cfg.Timeout+10*time.Second)
		if err != nil {
			return res, err
		}
		if len(f) != 2 {
			return res, fmt.Errorf("worker's round line has %d fields", len(f))
		}
		r, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return res, err
		}
		res.RoundRecv += r
		var h Histogram
		if err := h.UnmarshalText([]byte(f[1])); err != nil {
			return res, err
		}
		all.Merge(&h)
	}
	res.RoundSecs = time.Since(t0).Seconds()
	res.RoundLat = all.Summary()
	if t.PID != 0 {
		time.Sleep(500 * time.Millisecond)
		if res.RSSRound, err = readRSS(t.PID); err != nil {
			return res, err
		}
	}
	if res.RoundRecv != int64(n) {
		return res, fmt.Errorf("round: %d of %d messages arrived", res.RoundRecv, n)
	}
	return res, nil
}
