package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
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

// runThroughput runs tr's senders, each sending size-byte texts to its
// recipients as fast as its window allows, for warmup then dur; cpu, if
// not empty, meters the servers in the measured time.
func runThroughput(ctx context.Context, sys system, tr traffic, size int, warmup, dur time.Duration, cpu cpuMeter) (tpResult, error) {
	n, r := tr.n, tr.r
	if n > maxStampIdx {
		return tpResult{}, fmt.Errorf("at most %d clients", maxStampIdx)
	}
	var (
		delivered = make([]paddedCount, n) // by sender
		waiting   = make([]atomic.Bool, n)
		wake      = make([]chan struct{}, n)
		hists     = make([]Histogram, n) // by receiver
		measuring atomic.Bool
		bad       atomic.Int64
	)
	for i := range wake {
		wake[i] = make(chan struct{}, 1)
	}
	sk := func(recv int, text []byte) {
		idx, t, ok := readStamp(text)
		if !ok || idx >= tr.senders {
			bad.Add(1)
			return
		}
		if measuring.Load() {
			hists[recv].Record(now() - t)
		}
		delivered[idx].Add(1)
		if waiting[idx].Load() {
			select {
			case wake[idx] <- struct{}{}:
			default:
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(n)*time.Millisecond)
	defer cancel()
	if err := sys.Connect(cctx, n, sk); err != nil {
		sys.Close()
		return tpResult{}, fmt.Errorf("%s: connect: %w", sys.Name(), err)
	}
	defer sys.Close()

	window := windowFor(size, r) * int64(r)
	stop := make(chan struct{})
	sent := make([]paddedCount, n)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var sendErr error
	for i := range tr.senders {
		send, flush := sys.Sender(i, tr.rcpts(i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := newText(size)
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			var out int64 // deliveries owed: messages sent times r
			fail := func(err error) {
				errOnce.Do(func() { sendErr = err })
			}
			for {
				select {
				case <-stop:
					flush()
					return
				default:
				}
				if out-delivered[i].Load() >= window {
					if err := flush(); err != nil {
						fail(err)
						return
					}
					waiting[i].Store(true)
					if out-delivered[i].Load() >= window {
						timer.Reset(100 * time.Millisecond)
						select {
						case <-wake[i]:
						case <-timer.C:
						case <-stop:
						}
					}
					waiting[i].Store(false)
					continue
				}
				putStamp(text, i, now())
				if err := send(text); err != nil {
					fail(err)
					return
				}
				out += int64(r)
				sent[i].Add(1)
			}
		}()
	}
	total := func(c []paddedCount) int64 {
		var t int64
		for i := range c {
			t += c[i].Load()
		}
		return t
	}
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := sleep(warmup)
	measuring.Store(true)
	d0, s0, t0, c0 := total(delivered), total(sent), time.Now(), cpu.seconds()
	if err == nil {
		err = sleep(dur)
	}
	d1, s1, t1, c1 := total(delivered), total(sent), time.Now(), cpu.seconds()
	measuring.Store(false)
	close(stop)
	wg.Wait()
	if err != nil {
		return tpResult{}, err
	}
	if sendErr != nil {
		return tpResult{}, fmt.Errorf("%s: send: %w", sys.Name(), sendErr)
	}
	if b := bad.Load(); b > 0 {
		return tpResult{}, fmt.Errorf("%s: %d texts without a valid stamp", sys.Name(), b)
	}
	if cs, ok := sys.(*chatSystem); ok {
		if err := cs.err(); err != nil {
			return tpResult{}, err
		}
	}
	sys.Close() // stops the receivers, so the histograms can be read
	el := t1.Sub(t0).Seconds()
	var h Histogram
	for i := range hists {
		h.Merge(&hists[i])
	}
	return tpResult{
		Delivered: float64(d1-d0) / el,
		MBps:      float64(d1-d0) * float64(size) / el / 1e6,
		Sent:      float64(s1-s0) / el,
		Lat:       h.Summary(),
		ServerCPU: (c1 - c0) / el,
	}, nil
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

// runLatency offers rate messages per second, spread round-robin over
// tr's senders, for warmup then dur, and measures the delivery latency of
// the messages sent in the measured window; cpu, if not empty, meters the
// servers in that window.
func runLatency(ctx context.Context, sys system, tr traffic, rate, size int, warmup, dur time.Duration, cpu cpuMeter) (latResult, error) {
	n, r := tr.n, tr.r
	if n > maxStampIdx {
		return latResult{}, fmt.Errorf("at most %d clients", maxStampIdx)
	}
	var (
		hists    = make([]Histogram, n)
		received = make([]paddedCount, n)
		bad      atomic.Int64
		// The measured window: stamps from t0 on, before t1. Both are
		// set before the first send, so that the pacers and the
		// receivers judge every message alike.
		t0, t1 atomic.Int64
	)
	t0.Store(1 << 62)
	t1.Store(1 << 62)
	sk := func(recv int, text []byte) {
		idx, t, ok := readStamp(text)
		if !ok || idx >= tr.senders {
			bad.Add(1)
			return
		}
		if t >= t0.Load() && t < t1.Load() {
			hists[recv].Record(now() - t)
			received[recv].Add(1)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(n)*time.Millisecond)
	defer cancel()
	if err := sys.Connect(cctx, n, sk); err != nil {
		sys.Close()
		return latResult{}, fmt.Errorf("%s: connect: %w", sys.Name(), err)
	}
	defer sys.Close()

	type sender struct {
		idx   int
		send  func([]byte) error
		flush func() error
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sentMeasured atomic.Int64
	lags := make([]Histogram, pacers)
	var errOnce sync.Once
	var sendErr error
	startNs := now()
	t0.Store(startNs + int64(warmup))
	t1.Store(t0.Load() + int64(dur))
	interval := float64(time.Second) * pacers / float64(rate)
	for p := range pacers {
		var own []sender
		for i := p; i < tr.senders; i += pacers {
			send, flush := sys.Sender(i, tr.rcpts(i))
			own = append(own, sender{i, send, flush})
		}
		if len(own) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := newText(size)
			offset := float64(p) * interval / pacers
			for k := 0; ; {
				select {
				case <-stop:
					return
				default:
				}
				t := now()
				// Send every message due by now.
				for ; startNs+int64(offset+float64(k)*interval) <= t; k++ {
					s := own[k%len(own)]
					sendT := now()
					due := startNs + int64(offset+float64(k)*interval)
					putStamp(text, s.idx, sendT)
					err := s.send(text)
					if err == nil {
						err = s.flush()
					}
					if err != nil {
						errOnce.Do(func() { sendErr = err })
						return
					}
					if sendT >= t0.Load() && sendT < t1.Load() {
						sentMeasured.Add(1)
						lags[p].Record(sendT - due)
					}
				}
				next := startNs + int64(offset+float64(k)*interval)
				if d := next - now(); d > 0 {
					time.Sleep(time.Duration(d)) // wakes up to ~1 ms late: sends come in ticks
				}
			}
		}()
	}
	sleepUntil := func(t int64) error {
		select {
		case <-time.After(time.Duration(t - now())):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := sleepUntil(t0.Load())
	c0 := cpu.seconds()
	if err == nil {
		err = sleepUntil(t1.Load())
	}
	c1 := cpu.seconds()
	close(stop)
	wg.Wait()
	if err != nil {
		return latResult{}, err
	}
	if sendErr != nil {
		return latResult{}, fmt.Errorf("%s: send: %w", sys.Name(), sendErr)
	}
	// Drain: wait up to 5 s for the measured messages still in flight.
	want := sentMeasured.Load() * int64(r)
	got := func() int64 {
		var g int64
		for i := range received {
			g += received[i].Load()
		}
		return g
	}
	for deadline := time.Now().Add(5 * time.Second); got() < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	sys.Close() // stops the receivers, so the histograms can be read
	if b := bad.Load(); b > 0 {
		return latResult{}, fmt.Errorf("%s: %d texts without a valid stamp", sys.Name(), b)
	}
	if cs, ok := sys.(*chatSystem); ok {
		if err := cs.err(); err != nil {
			return latResult{}, err
		}
	}
	var h, lag Histogram
	for i := range hists {
		h.Merge(&hists[i])
	}
	for i := range lags {
		lag.Merge(&lags[i])
	}
	el := float64(t1.Load()-t0.Load()) / 1e9
	return latResult{
		Offered:   float64(rate),
		Achieved:  float64(sentMeasured.Load()) / el,
		Delivered: float64(h.Count()) / el,
		Lost:      want - h.Count(),
		Lat:       h.Summary(),
		Lag:       lag.Summary(),
		ServerCPU: (c1 - c0) / el,
	}, nil
}
