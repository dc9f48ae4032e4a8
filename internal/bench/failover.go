package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net"
	"net/http"
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

// Failover is the workload of issue 22, second part: users whose
// sessions were granted resume, on one node of a cluster, get a steady
// flow of messages from the other nodes; the node is killed with SIGKILL;
// each user's client resumes on another node (as gochat does with an -a
// list), and the workload checks that every message sent to it was either
// delivered once and in order, or counted in the resumed frame's missed.
const Failover = "failover"

// FailoverConfig is the failover workload's part of Config.
type FailoverConfig struct {
	Users  int           // resume-asking users on the node killed
	Others int           // idle users joined on each other node (worker processes), before the kill
	Rate   int           // messages per second to them, all senders together
	Before time.Duration // traffic before the kill
	After  time.Duration // traffic after the last resume
}

func defaultFailover() FailoverConfig {
	return FailoverConfig{Users: 100, Rate: 1000, Before: 2 * time.Second, After: time.Second}
}

// addFailoverFlags registers the failover workload's flags.
func addFailoverFlags(fs *pflag.FlagSet, c *FailoverConfig) {
	fs.IntVar(&c.Users, "failover-users", c.Users, "failover: users (asking for resume) on the node killed")
	fs.IntVar(&c.Others, "failover-others", c.Others, "failover: idle users joined on each of the other nodes before the kill (in worker processes, --clients-per-worker each)")
	fs.IntVar(&c.Rate, "failover-rate", c.Rate, "failover: messages per second to them from the other nodes, all together (0: idle users)")
	fs.DurationVar(&c.Before, "failover-before", c.Before, "failover: traffic before the kill")
	fs.DurationVar(&c.After, "failover-after", c.After, "failover: traffic after the last resume")
}

func (c FailoverConfig) validate() error {
	switch {
	case c.Users < 1 || c.Users > 20000:
		return fmt.Errorf("--failover-users %d out of range [1, 20000]", c.Users)
	case c.Others < 0:
		return fmt.Errorf("--failover-others %d is negative", c.Others)
	case c.Rate < 0 || c.Rate > 100000:
		return fmt.Errorf("--failover-rate %d out of range [0, 100000]", c.Rate)
	case c.Before <= 0 || c.After < 0:
		return errors.New("--failover-before must be positive, --failover-after not negative")
	}
	return nil
}

// foUser is one resume-asking user: a raw client that counts the counted
// frames, keeps the last cursor, acknowledges, and resumes through the
// addresses in order when its connection is lost, as gochat does.
type foUser struct {
	name  string
	addrs []string

	token  protocol.Token
	n      uint64 // counted frames read
	cursor []byte
	j      uint64
	acked  uint64
	unack  time.Time // when the first frame not acknowledged was read
	nc     net.Conn
	r      *protocol.Reader

	lastFrom  map[string]int // the last counter read from each sender
	delivered atomic.Int64
	missed    atomic.Int64
	dups      atomic.Int64 // a counter not past the last one of its sender: twice or out of order
	sent      atomic.Int64 // by the senders
	resumed   atomic.Int64 // ns from the kill to the first resume; 0 if never
	resumes   atomic.Int32 // resumes, all told: more than one means the session was lost again after the move
	refused   atomic.Bool
}

// join connects to the first address and joins, asking for resume and
// cursor frames.
func (u *foUser) join(ctx context.Context) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", u.addrs[0])
	if err != nil {
		return err
	}
	u.nc, u.r = nc, protocol.NewReader(nc)
	b := protocol.AppendExtHello(nil, []string{protocol.FeatureResume, protocol.FeatureCursor})
	b = protocol.AppendJoin(b, protocol.Join, u.name)
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(b); err != nil {
		return err
	}
	for {
		h, err := u.r.ReadHeader()
		if err != nil {
			return err
		}
		p, err := u.r.ReadPayload(nil)
		if err != nil {
			return err
		}
		switch h.Type {
		case protocol.ExtHello:
			if !bytes.Contains(p, []byte(protocol.FeatureCursor)) {
				return fmt.Errorf("%s: the server did not grant resume and cursor: %q", u.name, p)
			}
		case protocol.Session:
			u.token, _, err = protocol.ParseSession(p)
			return err
		default:
			return fmt.Errorf("%s: got %s before the session frame", u.name, h.Name)
		}
	}
}

// run reads until ctx ends, resuming on a lost connection; killed is when
// the node was killed (read once the loss is seen).
func (u *foUser) run(ctx context.Context, killed *atomic.Int64) {
	go func() {
		<-ctx.Done()
		u.closeConn()
	}()
	for ctx.Err() == nil {
		u.read()
		if ctx.Err() != nil {
			return
		}
		if !u.resume(ctx) {
			return
		}
		if u.resumes.Add(1) == 1 {
			u.resumed.Store(int64(time.Since(time.Unix(0, killed.Load()))))
		}
	}
}

var foConnMu sync.Mutex // guards the users' nc swaps against the closer

func (u *foUser) closeConn() {
	foConnMu.Lock()
	defer foConnMu.Unlock()
	if u.nc != nil {
		u.nc.Close()
	}
}

// read takes frames until the connection fails.
func (u *foUser) read() {
	for {
		h, err := u.r.ReadHeader()
		if err != nil {
			return
		}
		p, err := u.r.ReadPayload(nil)
		if err != nil {
			return
		}
		switch {
		case h.Type == protocol.Cursor:
			u.cursor, u.j = p, 0
			continue
		case !protocol.Counted(h.Type):
			continue
		}
		u.n++
		u.j++
		if h.Type == protocol.ForwardMessage {
			u.message(p)
		}
		// As gochat does: every 64 frames or 200 ms after the first
		// unacknowledged one (here checked as frames come).
		if u.n-u.acked == 1 {
			u.unack = time.Now()
		}
		if u.n-u.acked >= 64 || time.Since(u.unack) >= 200*time.Millisecond {
			u.nc.Write(protocol.AppendCount(nil, protocol.Received, u.n))
			u.acked = u.n
		}
	}
}

// message checks a message's counter ("1 <sender> <counter>").
func (u *foUser) message(p []byte) {
	f := bytes.SplitN(p, []byte{' '}, 3)
	if len(f) != 3 {
		return
	}
	k, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return
	}
	from := string(f[1])
	if k <= u.lastFrom[from] {
		u.dups.Add(1)
	}
	u.lastFrom[from] = k
	u.delivered.Add(1)
}

// resume reconnects through the addresses in order, rounds 50 ms apart,
// until the session is resumed (true), refused or the window passes.
func (u *foUser) resume(ctx context.Context) bool {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, a := range u.addrs {
			ok, refused := u.resumeAt(ctx, a)
			if ok {
				return true
			}
			if refused {
				u.refused.Store(true)
				return false
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

func (u *foUser) resumeAt(ctx context.Context, addr string) (ok, refused bool) {
	d := net.Dialer{Timeout: 2 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, false
	}
	b := protocol.AppendExtHello(nil, []string{protocol.FeatureResume, protocol.FeatureCursor})
	b = protocol.AppendResumeAt(b, u.name, u.token, u.n, u.j, u.cursor)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := protocol.NewReader(nc)
	if _, err := nc.Write(b); err != nil {
		nc.Close()
		return false, false
	}
	for {
		h, err := r.ReadHeader()
		if err != nil {
			nc.Close()
			return false, false
		}
		p, err := r.ReadPayload(nil)
		if err != nil {
			nc.Close()
			return false, false
		}
		switch h.Type {
		case protocol.ExtHello:
			continue
		case protocol.Resumed:
			missed, _ := protocol.ParseCountFrame(p)
			u.missed.Add(int64(missed))
			nc.SetDeadline(time.Time{})
			foConnMu.Lock()
			u.nc, u.r = nc, r
			foConnMu.Unlock()
			if ctx.Err() != nil {
				nc.Close()
			}
			return true, false
		default:
			nc.Close()
			return false, true
		}
	}
}

// failoverRows runs the failover workload: a cluster of --cluster nodes
// (at least 3), --failover-users users on n1, senders on each other node
// sending them --failover-rate messages a second in all, n1 killed with
// SIGKILL after --failover-before.
func failoverRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	fc := cfg.Failover
	if err := fc.validate(); err != nil {
		return nil, err
	}
	k := max(cfg.Cluster, 3)
	cl, err := spawnCluster(ctx, cfg.ServerBin, k, fc.Users+fc.Others*(k-1)+k+16, cfg.Timeout, stderr)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	victim := cl.Nodes[0]
	if fc.Others > 0 {
		// Idle users on the other nodes, which the moved users join.
		for _, t := range cl.Nodes[1:] {
			moved := (fc.Users + k - 2) / (k - 1) // spread over the other nodes (see addrs below)
			if err := checkFDs(t, int64(fc.Others+moved+64), "the idle and moved users", ""); err != nil {
				return nil, err
			}
		}
		workers, err := startScaleWorkers(cfg, cl.Nodes[1:], runPrefix()+"idle", fc.Others*(k-1), stderr)
		defer func() {
			for _, w := range workers {
				w.stop(5 * time.Second)
			}
		}()
		if err != nil {
			return nil, fmt.Errorf("joining the other nodes' idle users: %w", err)
		}
		fmt.Fprintf(stderr, "failover: %d idle users joined each other node\n", fc.Others)
	}
	users := make([]*foUser, fc.Users)
	joinErrs := make([]error, len(users))
	var joins sync.WaitGroup
	gate := make(chan struct{}, 256) // joins under way at once
	for i := range users {
		// The node killed first, then the others from a place of
		// the user's own, as people given different address lists
		// are: the moved users spread over the other nodes.
		addrs := []string{victim.Addr}
		for j := range k - 1 {
			addrs = append(addrs, cl.Nodes[1+(i+j)%(k-1)].Addr)
		}
		users[i] = &foUser{name: fmt.Sprintf("fo%d", i), addrs: addrs, lastFrom: make(map[string]int)}
		gate <- struct{}{}
		joins.Go(func() {
			defer func() { <-gate }()
			joinErrs[i] = users[i].join(ctx)
		})
	}
	joins.Wait()
	if err := errors.Join(joinErrs...); err != nil {
		for _, u := range users {
			u.closeConn()
		}
		return nil, fmt.Errorf("joining: %w", err)
	}
	fmt.Fprintf(stderr, "failover: %d users joined %s\n", len(users), victim.Node)
	// The senders: one per other node.
	var senders []net.Conn
	for i, t := range cl.Nodes[1:] {
		nc, err := net.DialTimeout("tcp", t.Addr, 10*time.Second)
		if err == nil {
			_, err = nc.Write(protocol.AppendJoin(nil, protocol.Join, fmt.Sprintf("sender%d", i+2)))
		}
		if err != nil {
			for _, u := range users {
				u.closeConn()
			}
			return nil, err
		}
		senders = append(senders, nc)
		go io.Copy(io.Discard, nc) // its list answers, if any
	}
	defer func() {
		for _, s := range senders {
			s.Close()
		}
	}()
	// Every node hears of a join within milliseconds (the registry's
	// watch); a second is ample before the traffic starts.
	time.Sleep(time.Second)

	runCtx, stopUsers := context.WithCancel(ctx)
	var killed atomic.Int64
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() { u.run(runCtx, &killed) })
	}
	stopSend := make(chan struct{})
	var sendWG sync.WaitGroup
	var sendErr atomic.Pointer[error]
	for si, s := range senders {
		if fc.Rate == 0 {
			break
		}
		sendWG.Go(func() {
			per := max(1, fc.Rate/len(senders)/100) // every 10 ms
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			next := si % len(users)
			counters := make([]int, len(users))
			var b []byte
			for {
				select {
				case <-stopSend:
					return
				case <-tick.C:
				}
				b = b[:0]
				var batch []int
				for range per {
					i := next
					next = (next + 1) % len(users)
					counters[i]++
					b = protocol.AppendMessage(b, protocol.SendMessage, []string{users[i].name}, []byte(strconv.Itoa(counters[i])))
					batch = append(batch, i)
				}
				s.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := s.Write(b); err != nil {
					sendErr.Store(&err)
					return
				}
				for _, i := range batch {
					users[i].sent.Add(1)
				}
			}
		})
	}
	time.Sleep(fc.Before)
	// What the survivors keep for the users about to move (issue 22:
	// origin retention, bounded by --resume-buffer and trimmed by
	// acknowledgements), read at the kill.
	retained, heap, cpu := math.NaN(), 0.0, 0.0
	for _, t := range cl.Nodes[1:] {
		m, err := scrapeMetrics(ctx, t.metricsAddr, "chat_cluster_retained_bytes", "go_memstats_heap_inuse_bytes", "process_cpu_seconds_total")
		if err != nil {
			fmt.Fprintf(stderr, "failover: %s's metrics: %v\n", t.Node, err)
			continue
		}
		if v, ok := m["chat_cluster_retained_bytes"]; ok {
			if math.IsNaN(retained) { // NaN for a build without the metric
				retained = 0
			}
			retained += v
		}
		heap += m["go_memstats_heap_inuse_bytes"]
		cpu += m["process_cpu_seconds_total"]
	}
	fmt.Fprintf(stderr, "failover: killing %s (%d users) at %d msgs/s\n", victim.Node, len(users), fc.Rate)
	killed.Store(time.Now().UnixNano())
	syscall.Kill(victim.PID, syscall.SIGKILL)
	// Until every user is back (or refused, or the window passed).
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		back := 0
		for _, u := range users {
			if u.resumed.Load() > 0 || u.refused.Load() {
				back++
			}
		}
		if back == len(users) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(fc.After)
	close(stopSend)
	sendWG.Wait()
	if p := sendErr.Load(); p != nil {
		stopUsers()
		wg.Wait()
		return nil, fmt.Errorf("a sender failed: %w", *p)
	}
	// Until every user has what was sent, or 10 s.
	settle := time.Now().Add(10 * time.Second)
	for time.Now().Before(settle) {
		done := true
		for _, u := range users {
			done = done && u.delivered.Load()+u.missed.Load() >= u.sent.Load()
		}
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopUsers()
	wg.Wait()

	var times []time.Duration
	var delivered, missed, sent, dups, refused, unbalanced, again int64
	for _, u := range users {
		if d := time.Duration(u.resumed.Load()); d > 0 {
			times = append(times, d)
		}
		if u.refused.Load() {
			refused++
		}
		if u.resumes.Load() > 1 {
			again++
		}
		d, m, s := u.delivered.Load(), u.missed.Load(), u.sent.Load()
		delivered, missed, sent, dups = delivered+d, missed+m, sent+s, dups+u.dups.Load()
		if d+m != s {
			unbalanced++
		}
	}
	slices.Sort(times)
	ms := func(q float64) float64 {
		if len(times) == 0 {
			return 0
		}
		return float64(times[min(len(times)-1, int(q*float64(len(times))))].Microseconds()) / 1000
	}
	params := fmt.Sprintf("nodes=%d users=%d others=%d rate=%d/s", k, fc.Users, fc.Others, fc.Rate)
	row := func(metric, unit string, v float64, target string) Row {
		return Row{Workload: Failover, Params: params, System: "cluster", Metric: metric, Unit: unit, Ours: v, Base: math.NaN(), Target: target}
	}
	return []Row{
		row("resumed", "users", float64(len(times)), fmt.Sprintf("== %d", fc.Users)),
		row("refused", "users", float64(refused), "== 0"),
		row("lost again after the resume", "users", float64(again), "== 0"),
		row("resume time p50", "ms", ms(0.5), ""),
		row("resume time p99", "ms", ms(0.99), "<= 5000"),
		row("resume time max", "ms", ms(1), ""),
		row("sent", "msgs", float64(sent), ""),
		row("delivered", "msgs", float64(delivered), ""),
		row("missed (told)", "msgs", float64(missed), ""),
		row("users with delivered+missed != sent", "users", float64(unbalanced), "== 0"),
		row("twice or out of order", "msgs", float64(dups), "== 0"),
		row("sent per user", "msgs", float64(sent)/float64(len(users)), ""),
		row("kept by the survivors for them at the kill", "KiB", retained/1024, ""),
		row("survivors' heap in use at the kill", "MiB", heap/(1<<20), ""),
		row("survivors' CPU from their start to the kill", "s", cpu, ""),
	}, nil
}

// scrapeMetrics reads the values of the named metrics (without labels)
// from the Prometheus endpoint at addr; a metric it does not serve is
// missing from the map.
func scrapeMetrics(ctx context.Context, addr string, names ...string) (map[string]float64, error) {
	if addr == "" {
		return nil, errors.New("no metrics address")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	got := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			got[name] = v
		}
	}
	return got, sc.Err()
}

// failoverFlags adds the failover workload's flags.
func failoverFlags(fs *pflag.FlagSet, c *Config) { addFailoverFlags(fs, &c.Failover) }

// failoverRuns is the failover workload's one run. It is not a trial:
// it kills one of its own servers in the middle of measuring, so it
// spawns and stops its cluster itself (failoverRows).
func failoverRuns(cfg Config, _ io.Writer) iter.Seq[job] {
	return func(yield func(job) bool) {
		yield(jobFunc(func(ctx context.Context, stderr io.Writer) ([]Row, error) {
			return failoverRows(ctx, cfg, stderr)
		}))
	}
}
