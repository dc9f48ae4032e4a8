package bench

import (
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
)

// paddedCount is an atomic counter on its own cache line.
type paddedCount struct {
	atomic.Int64
	_ [56]byte
}

// tpResult is one throughput run.
type tpResult struct {
	Delivered float64 // messages delivered per second (each recipient counts)
	MBps      float64 // text bytes delivered per second, in MB (10^6)
	Sent      float64 // send operations per second
	Lat       Summary // delivery latency under this load
	ServerCPU float64 // CPU the servers used in the measured time, in cores (seconds per second); NaN if not known
}

// windowFor returns how many of a sender's messages may be in flight: at
// most 1000, and at most about 1 MiB waiting for any one recipient.
func windowFor(size, r int) int64 {
	w := (1 << 20) / (r * (size + 64))
	return int64(min(max(w, 1), 1000))
}

// traffic says who sends to whom: of n clients, 0 to senders-1 send, each
// to the r clients rcpts returns.
type traffic struct {
	n, senders, r int
	rcpts         func(i int) []int
}

// everyone is the single-node pattern: each of n clients sends to the r
// clients after it.
func everyone(n, r int) traffic {
	return traffic{n: n, senders: n, r: r, rcpts: func(i int) []int { return recipients(i, r, n) }}
}

// halves is the pattern across nodes: the first half of n clients (the
// senders, who join the first node) sends to the second half (who join
// another node), sender i to the r recipients from the i-th on.
func halves(n, r int) (traffic, error) {
	s := n / 2
	if s < 1 || r < 1 || r > n-s {
		return traffic{}, fmt.Errorf("%d clients split into %d senders and %d recipients cannot give each message %d recipients", n, s, n-s, r)
	}
	return traffic{n: n, senders: s, r: r, rcpts: func(i int) []int {
		out := make([]int, r)
		for k := range out {
			out[k] = s + (i+k)%(n-s)
		}
		return out
	}}, nil
}

// msgRun is what a throughput run and a latency run share: the clients
// of a system connected, every text they receive checked for a stamp,
// the senders' first error, and the checks at the end.
type msgRun struct {
	sys  system
	stop chan struct{}  // closed to stop the senders
	wg   sync.WaitGroup // the senders

	bad     atomic.Int64 // texts without a valid stamp
	errOnce sync.Once
	sendErr error // the first sender's error; set through errOnce
}

// startMsgRun connects the n clients of tr to sys. got is called with
// each valid stamp a client receives (recv is its index), from one
// goroutine per receiver.
func startMsgRun(ctx context.Context, sys system, tr traffic, got func(recv, idx int, t int64)) (*msgRun, error) {
	if tr.n > maxStampIdx {
		return nil, fmt.Errorf("at most %d clients", maxStampIdx)
	}
	m := &msgRun{sys: sys, stop: make(chan struct{})}
	sk := func(recv int, text []byte) {
		idx, t, ok := readStamp(text)
		if !ok || idx >= tr.senders {
			m.bad.Add(1)
			return
		}
		got(recv, idx, t)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(tr.n)*time.Millisecond)
	defer cancel()
	if err := sys.Connect(cctx, tr.n, sk); err != nil {
		sys.Close()
		return nil, fmt.Errorf("%s: connect: %w", sys.Name(), err)
	}
	return m, nil
}

// fail records a sender's error; the first is the run's.
func (m *msgRun) fail(err error) { m.errOnce.Do(func() { m.sendErr = err }) }

// end stops the senders and, unless err (the measured window's error) or
// a sender's says the run failed, runs drain (if not nil); then it
// disconnects the clients, which stops the receivers, so that what they
// recorded can be read. It returns the first thing that went wrong.
func (m *msgRun) end(err error, drain func()) error {
	close(m.stop)
	m.wg.Wait()
	if err == nil && m.sendErr != nil {
		err = fmt.Errorf("%s: send: %w", m.sys.Name(), m.sendErr)
	}
	if err == nil && drain != nil {
		drain()
	}
	var readErr error
	if cs, ok := m.sys.(*chatSystem); ok {
		// Before Close: a WebSocket client's read ends with an error of
		// its own when it is closed.
		readErr = cs.err()
	}
	m.sys.Close()
	if err != nil {
		return err
	}
	if b := m.bad.Load(); b > 0 {
		return fmt.Errorf("%s: %d texts without a valid stamp", m.sys.Name(), b)
	}
	return readErr
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// total sums counters.
func total(c []paddedCount) int64 {
	var t int64
	for i := range c {
		t += c[i].Load()
	}
	return t
}

// merged returns the histograms merged into one.
func merged(hs []Histogram) *Histogram {
	var h Histogram
	for i := range hs {
		h.Merge(&hs[i])
	}
	return &h
}

// tpRun is the state of one throughput run.
type tpRun struct {
	*msgRun
	size      int
	window    int64         // deliveries a sender may owe
	delivered []paddedCount // by sender
	sent      []paddedCount // by sender
	waiting   []atomic.Bool // by sender: it waits for deliveries
	wake      []chan struct{}
	hists     []Histogram // by receiver
	measuring atomic.Bool
}

// runThroughput runs tr's senders, each sending size-byte texts to its
// recipients as fast as its window allows, for warmup then dur; cpu, if
// not empty, meters the servers in the measured time.
func runThroughput(ctx context.Context, sys system, tr traffic, size int, warmup, dur time.Duration, cpu cpuMeter) (tpResult, error) {
	n := tr.n
	t := &tpRun{
		size:      size,
		window:    windowFor(size, tr.r) * int64(tr.r),
		delivered: make([]paddedCount, n),
		sent:      make([]paddedCount, n),
		waiting:   make([]atomic.Bool, n),
		wake:      make([]chan struct{}, n),
		hists:     make([]Histogram, n),
	}
	for i := range t.wake {
		t.wake[i] = make(chan struct{}, 1)
	}
	m, err := startMsgRun(ctx, sys, tr, t.got)
	if err != nil {
		return tpResult{}, err
	}
	t.msgRun = m
	for i := range tr.senders {
		send, flush := sys.Sender(i, tr.rcpts(i))
		m.wg.Go(func() { t.send(i, tr.r, send, flush) })
	}
	err = sleepCtx(ctx, warmup)
	t.measuring.Store(true)
	d0, s0, t0, c0 := total(t.delivered), total(t.sent), time.Now(), cpu.seconds()
	if err == nil {
		err = sleepCtx(ctx, dur)
	}
	d1, s1, t1, c1 := total(t.delivered), total(t.sent), time.Now(), cpu.seconds()
	t.measuring.Store(false)
	if err := m.end(err, nil); err != nil {
		return tpResult{}, err
	}
	el := t1.Sub(t0).Seconds()
	return tpResult{
		Delivered: float64(d1-d0) / el,
		MBps:      float64(d1-d0) * float64(size) / el / 1e6,
		Sent:      float64(s1-s0) / el,
		Lat:       merged(t.hists).Summary(),
		ServerCPU: (c1 - c0) / el,
	}, nil
}

// got counts a delivery of sender idx's, and wakes the sender if it waits
// for one.
func (t *tpRun) got(recv, idx int, ts int64) {
	if t.measuring.Load() {
		t.hists[recv].Record(now() - ts)
	}
	t.delivered[idx].Add(1)
	if t.waiting[idx].Load() {
		select {
		case t.wake[idx] <- struct{}{}:
		default:
		}
	}
}

// send is sender i: it sends texts to its r recipients as long as it owes
// fewer than the window's deliveries, until the run stops.
func (t *tpRun) send(i, r int, send func([]byte) error, flush func() error) {
	text := newText(t.size)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	delivered, sent, waiting := &t.delivered[i], &t.sent[i], &t.waiting[i]
	var out int64 // deliveries owed: messages sent times r
	for {
		select {
		case <-t.stop:
			flush()
			return
		default:
		}
		if out-delivered.Load() >= t.window {
			if err := flush(); err != nil {
				t.fail(err)
				return
			}
			waiting.Store(true)
			if out-delivered.Load() >= t.window {
				timer.Reset(100 * time.Millisecond)
				select {
				case <-t.wake[i]:
				case <-timer.C:
				case <-t.stop:
				}
			}
			waiting.Store(false)
			continue
		}
		putStamp(text, i, now())
		if err := send(text); err != nil {
			t.fail(err)
			return
		}
		out += int64(r)
		sent.Add(1)
	}
}

// latResult is one latency run.
type latResult struct {
	Offered   float64 // messages per second asked for
	Achieved  float64 // messages per second sent in the measured window
	Delivered float64 // deliveries per second in the measured window
	Lost      int64   // deliveries missing after the drain
	Lat       Summary
	Lag       Summary // how late the pacers sent, against their schedule
	ServerCPU float64 // CPU the servers used in the measured time, in cores (seconds per second); NaN if not known
}

// pacers is how many goroutines send in a latency run.
const pacers = 2

// latRun is the state of one latency run.
type latRun struct {
	*msgRun
	size     int
	start    int64   // when the schedule starts (now's clock)
	interval float64 // nanoseconds between two sends of one pacer
	// The measured window: stamps from t0 on, before t1. Both are set
	// before the first send, so that the pacers and the receivers judge
	// every message alike.
	t0, t1       atomic.Int64
	hists        []Histogram   // by receiver
	received     []paddedCount // by receiver
	lags         []Histogram   // by pacer
	sentMeasured atomic.Int64
}

// latSender is a sender of a latency run's pacer.
type latSender struct {
	idx   int
	send  func([]byte) error
	flush func() error
}

// runLatency offers rate messages per second, spread round-robin over
// tr's senders, for warmup then dur, and measures the delivery latency of
// the messages sent in the measured window; cpu, if not empty, meters the
// servers in that window.
func runLatency(ctx context.Context, sys system, tr traffic, rate, size int, warmup, dur time.Duration, cpu cpuMeter) (latResult, error) {
	l := &latRun{size: size, hists: make([]Histogram, tr.n), received: make([]paddedCount, tr.n), lags: make([]Histogram, pacers)}
	l.t0.Store(1 << 62)
	l.t1.Store(1 << 62)
	m, err := startMsgRun(ctx, sys, tr, l.got)
	if err != nil {
		return latResult{}, err
	}
	l.msgRun = m
	l.start = now()
	l.t0.Store(l.start + int64(warmup))
	l.t1.Store(l.t0.Load() + int64(dur))
	l.interval = float64(time.Second) * pacers / float64(rate)
	for p := range pacers {
		var own []latSender
		for i := p; i < tr.senders; i += pacers {
			send, flush := sys.Sender(i, tr.rcpts(i))
			own = append(own, latSender{i, send, flush})
		}
		if len(own) > 0 {
			m.wg.Go(func() { l.pace(p, own) })
		}
	}
	err = sleepCtx(ctx, time.Duration(l.t0.Load()-now()))
	c0 := cpu.seconds()
	if err == nil {
		err = sleepCtx(ctx, time.Duration(l.t1.Load()-now()))
	}
	c1 := cpu.seconds()
	var want int64 // deliveries of the measured messages, known once the pacers stop
	drain := func() {
		want = l.sentMeasured.Load() * int64(tr.r)
		l.drain(want)
	}
	if err := m.end(err, drain); err != nil {
		return latResult{}, err
	}
	h := merged(l.hists)
	el := float64(l.t1.Load()-l.t0.Load()) / 1e9
	return latResult{
		Offered:   float64(rate),
		Achieved:  float64(l.sentMeasured.Load()) / el,
		Delivered: float64(h.Count()) / el,
		Lost:      want - h.Count(),
		Lat:       h.Summary(),
		Lag:       merged(l.lags).Summary(),
		ServerCPU: (c1 - c0) / el,
	}, nil
}

// got records the latency of a message sent in the measured window.
func (l *latRun) got(recv, _ int, t int64) {
	if t >= l.t0.Load() && t < l.t1.Load() {
		l.hists[recv].Record(now() - t)
		l.received[recv].Add(1)
	}
}

// pace is pacer p: it sends, round-robin over own, every message of its
// schedule that is due, until the run stops.
func (l *latRun) pace(p int, own []latSender) {
	text := newText(l.size)
	offset := float64(p) * l.interval / pacers
	due := func(k int) int64 { return l.start + int64(offset+float64(k)*l.interval) }
	for k := 0; ; {
		select {
		case <-l.stop:
			return
		default:
		}
		t := now()
		// Send every message due by now.
		for ; due(k) <= t; k++ {
			s := own[k%len(own)]
			sendT := now()
			putStamp(text, s.idx, sendT)
			err := s.send(text)
			if err == nil {
				err = s.flush()
			}
			if err != nil {
				l.fail(err)
				return
			}
			if sendT >= l.t0.Load() && sendT < l.t1.Load() {
				l.sentMeasured.Add(1)
				l.lags[p].Record(sendT - due(k))
			}
		}
		if d := due(k) - now(); d > 0 {
			time.Sleep(time.Duration(d)) // wakes up to ~1 ms late: sends come in ticks
		}
	}
}

// drain waits up to 5 s for the measured messages still in flight: want
// deliveries in all.
func (l *latRun) drain(want int64) {
	for deadline := time.Now().Add(5 * time.Second); total(l.received) < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// The throughput and latency workloads.

func throughputFlags(fs *pflag.FlagSet, c *Config) {
	fs.Var(intList{&c.Clients, false}, "clients", "throughput: clients (C)")
	fs.Var(intList{&c.Sizes, true}, "size", "throughput: text size in bytes (S)")
	fs.Var(intList{&c.Recipients, false}, "recipients", "throughput: recipients per message (R)")
}

func latencyFlags(fs *pflag.FlagSet, c *Config) {
	fs.IntVar(&c.LatClients, "latency-clients", c.LatClients, "latency: clients")
	fs.Var(intList{&c.Rates, false}, "rate", "latency: offered messages per second, all clients together")
	fs.IntVar(&c.LatSize, "latency-size", c.LatSize, "latency: text size in bytes")
	fs.IntVar(&c.LatRecipients, "latency-recipients", c.LatRecipients, "latency: recipients per message")
}

// tpCase is one combination of the throughput lists: n clients sending
// size-byte texts to r recipients each.
type tpCase struct{ n, size, r int }

// tpCases yields every combination of the throughput lists.
func tpCases(cfg Config) iter.Seq[tpCase] {
	return func(yield func(tpCase) bool) {
		for _, n := range cfg.Clients {
			for _, size := range cfg.Sizes {
				for _, r := range cfg.Recipients {
					if r <= n && !yield(tpCase{n, size, r}) {
						return
					}
				}
			}
		}
	}
}

func throughputRuns(cfg Config, _ io.Writer) iter.Seq[job] {
	return jobs(tpCases(cfg), func(c tpCase) job {
		params := fmt.Sprintf("clients=%d size=%dB recipients=%d %s %s %s", c.n, c.size, c.r, durParam(cfg), targetParam(cfg), loadParam())
		return vsNATS(cfg, Throughput, params, 64<<10, 32<<10, func(ctx context.Context, sys system) (tpResult, error) {
			return runThroughput(ctx, sys, everyone(c.n, c.r), c.size, cfg.Warmup, cfg.Duration, nil)
		}, func(row rowFunc, ours, base tpResult) []Row {
			return tpRows(row, c, ours, base)
		})
	})
}

// vsNATS returns the run of measure against the chat server of
// inProcessServer, its clients' buffers rbuf and wbuf bytes, and then
// (unless cfg.NoBaseline) against an embedded nats-server, reported by
// rows.
func vsNATS[T any](cfg Config, workload, params string, rbuf, wbuf int, measure func(context.Context, system) (T, error), rows func(row rowFunc, ours, base T) []Row) trial[T] {
	t := trial[T]{
		workload: workload,
		params:   params,
		ours: side[T]{label: "chat", servers: inProcessServer(cfg), measure: func(ctx context.Context, nodes []*target) (T, error) {
			return measure(ctx, newChatSystem(nodes[0].Addr, cfg.SrcAddrs, rbuf, wbuf))
		}},
		rows: rows,
	}
	if !cfg.NoBaseline {
		t.baseName, t.base = "nats-server", &side[T]{label: "nats", measure: func(ctx context.Context, _ []*target) (T, error) {
			ns, err := newNATSSystem()
			if err != nil {
				var zero T
				return zero, err
			}
			return measure(ctx, ns)
		}}
	}
	return t
}

func clusterThroughputRuns(cfg Config, _ io.Writer) iter.Seq[job] {
	return jobs(tpCases(cfg), func(c tpCase) job {
		tr, err := halves(c.n, c.r)
		if err != nil {
			return failed{err}
		}
		params := fmt.Sprintf("clients=%d senders=%d@n1 recipients=%d@n2 size=%dB per-message=%d %s %s", c.n, tr.senders, c.n-tr.senders, c.size, c.r, durParam(cfg), clusterParams(cfg))
		return clusterTrial(cfg, Throughput, params, c.n+16, func(ctx context.Context, nodes []*target) (tpResult, error) {
			sys := splitSystem(nodes[0].Addr, second(nodes).Addr, tr, cfg.SrcAddrs, 64<<10, 32<<10)
			return runThroughput(ctx, sys, tr, c.size, cfg.Warmup, cfg.Duration, pidsOf(nodes))
		}, func(row rowFunc, ours, single tpResult) []Row {
			rows := tpRows(row, c, ours, single)
			return append(rows, cpuRows(row, ours.ServerCPU, single.ServerCPU, ours.Delivered, single.Delivered)...)
		})
	})
}

// tpRows are the rows of one throughput run beside its baseline's.
func tpRows(row rowFunc, c tpCase, ours, base tpResult) []Row {
	target := ""
	if c.n == 100 && c.size == 32 && c.r == 1 {
		target = ">= 0.5x"
	}
	return []Row{
		row("delivered", "msgs/s", ours.Delivered, base.Delivered, target),
		row("delivered", "MB/s", ours.MBps, base.MBps, ""),
		row("sent", "msgs/s", ours.Sent, base.Sent, ""),
		row("latency p50 under load", "ms", ms(ours.Lat.P50), ms(base.Lat.P50), ""),
		row("latency p99 under load", "ms", ms(ours.Lat.P99), ms(base.Lat.P99), ""),
	}
}

func latencyRuns(cfg Config, _ io.Writer) iter.Seq[job] {
	n, size, r := cfg.LatClients, cfg.LatSize, cfg.LatRecipients
	return jobs(slices.Values(cfg.Rates), func(rate int) job {
		params := fmt.Sprintf("clients=%d rate=%d/s size=%dB recipients=%d %s %s %s", n, rate, size, r, durParam(cfg), targetParam(cfg), loadParam())
		return vsNATS(cfg, Latency, params, 4<<10, 4<<10, func(ctx context.Context, sys system) (latResult, error) {
			return runLatency(ctx, sys, everyone(n, r), rate, size, cfg.Warmup, cfg.Duration, nil)
		}, func(row rowFunc, ours, base latResult) []Row {
			p99Target := ""
			if n == 1000 && rate == 20000 {
				p99Target = "< 1"
			}
			return latRows(row, ours, base, p99Target)
		})
	})
}

func clusterLatencyRuns(cfg Config, _ io.Writer) iter.Seq[job] {
	n, size, r := cfg.LatClients, cfg.LatSize, cfg.LatRecipients
	return jobs(slices.Values(cfg.Rates), func(rate int) job {
		tr, err := halves(n, r)
		if err != nil {
			return failed{err}
		}
		params := fmt.Sprintf("clients=%d senders=%d@n1 recipients=%d@n2 rate=%d/s size=%dB per-message=%d %s %s", n, tr.senders, n-tr.senders, rate, size, r, durParam(cfg), clusterParams(cfg))
		return clusterTrial(cfg, Latency, params, n+16, func(ctx context.Context, nodes []*target) (latResult, error) {
			sys := splitSystem(nodes[0].Addr, second(nodes).Addr, tr, cfg.SrcAddrs, 4<<10, 4<<10)
			return runLatency(ctx, sys, tr, rate, size, cfg.Warmup, cfg.Duration, pidsOf(nodes))
		}, func(row rowFunc, ours, single latResult) []Row {
			p99Target := ""
			if rate == 20000 {
				p99Target = "<= 2x"
			}
			rows := latRows(row, ours, single, p99Target)
			return append(rows, cpuRows(row, ours.ServerCPU, single.ServerCPU, ours.Delivered, single.Delivered)...)
		})
	})
}

// latRows are the rows of one latency run beside its baseline's.
func latRows(row rowFunc, ours, base latResult, p99Target string) []Row {
	o, b := ours.Lat, base.Lat
	return []Row{
		row("sent", "msgs/s", ours.Achieved, base.Achieved, ""),
		row("delivered", "msgs/s", ours.Delivered, base.Delivered, ""),
		row("lost", "msgs", float64(ours.Lost), float64(base.Lost), ""),
		row("p50", "ms", ms(o.P50), ms(b.P50), ""),
		row("p90", "ms", ms(o.P90), ms(b.P90), ""),
		row("p99", "ms", ms(o.P99), ms(b.P99), p99Target),
		row("p99.9", "ms", ms(o.P999), ms(b.P999), ""),
		row("max", "ms", ms(o.Max), ms(b.Max), ""),
		row("sender lag p99", "ms", ms(ours.Lag.P99), ms(base.Lag.P99), ""),
	}
}
