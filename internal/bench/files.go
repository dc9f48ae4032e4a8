package bench

import (
	"context"
	"fmt"
	"io"
	"iter"
	"math"
	"net"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/protocol"
)

// filesResult is one file run.
type filesResult struct {
	Secs float64 // from the first byte sent until every recipient has the file
	MBps float64 // file size / Secs, in MB (10^6) per second
	// The RSS of the sender's server (and, in a cluster, of the
	// recipients' one) just before the transfer, and its peak during it.
	RSSBase, RSSPeak         int64
	RecvRSSBase, RecvRSSPeak int64
	Chat                     Summary // latency of chat messages to recipient 0 sent during the transfer
	ChatSent                 int64
	ChatRecv                 int64
	Weighed                  bool    // the sender's server runs in a process of its own: its RSS is read
	ServerCPU                float64 // CPU seconds the servers used in Secs; NaN if not known
	// SenderNext is the seconds from the file's first byte until the
	// message its sender writes right after the file reaches recipient 0
	// (a send_file's next frame comes after its last byte, so a server
	// that paces the sender to a slow recipient holds it: issue 19).
	SenderNext float64
}

const (
	fileWriteChunk = 1 << 20
	fileReadChunk  = 256 << 10
)

// fileContent returns a chunk of non-repeating-looking bytes to send.
func fileContent() []byte {
	b := make([]byte, fileWriteChunk)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// readAll reads r to its end and returns how many bytes it gave.
func readAll(r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// File delivery modes: the contract's one forward_file frame, or the
// chunked-file extension's frames, between which chat can pass.
const (
	ModePlain   = "plain"
	ModeChunked = "chunked"
)

// runFiles sends one file of size bytes to r recipients, from a client of
// the server send to clients of the server recv (the same one, or another
// node of its cluster), while another client of send sends chat messages
// at chatRate per second to the first recipient. The recipients receive it
// as mode says; cpu, if not empty, meters the servers during the transfer.
// With slowRate > 0, one more recipient, not waited for, reads the file
// at slowRate bytes per second.
func runFiles(ctx context.Context, send, recv *target, size int64, r, chatRate, slowRate int, mode string, timeout time.Duration, cpu cpuMeter) (filesResult, error) {
	var res filesResult
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	run := newFileRun(r)
	prefix, rnames := run.prefix, run.rnames
	var (
		conns  clientSet
		nextAt = make(chan time.Time, 1) // the sender's message after the file, at recipient 0
	)
	defer conns.close()
	dial := func(t *target, name string, h handlers, features ...string) (*chatClient, error) {
		return conns.dial(ctx, t.Addr, name, 64<<10, 64<<10, h, features...)
	}
	for k := range r {
		h, features := fileRecipient(k, size, mode, func(err error) { run.ended(k, err) })
		if k == 0 {
			h.msg = func(text []byte) {
				if idx, _, ok := readStamp(text); ok && idx == 1 { // the sender's, after the file
					nextAt <- time.Now()
					return
				}
				run.chat.record(text)
			}
		}
		if _, err := dial(recv, rnames[k], h, features...); err != nil {
			return res, err
		}
	}
	tonames := rnames
	if slowRate > 0 {
		tonames = append(rnames[:r:r], prefix+"slow")
		h, features := slowRecipient(slowRate, mode)
		if _, err := dial(recv, prefix+"slow", h, features...); err != nil {
			return res, err
		}
	}
	sender, err := dial(send, prefix+"s", handlers{})
	if err != nil {
		return res, err
	}
	chatter, err := dial(send, prefix+"c", handlers{})
	if err != nil {
		return res, err
	}
	if err := waitJoined(ctx, sender, prefix, len(tonames)+2, nil); err != nil {
		return res, err
	}

	var sendRSS, recvRSS *rssSampler
	if res.RSSBase, sendRSS, err = watchRSS(send.PID); err != nil {
		return res, err
	}
	res.Weighed = send.PID != 0
	apart := recv.PID != 0 && recv.PID != send.PID // the recipients' server is another process
	if apart {
		if res.RecvRSSBase, recvRSS, err = watchRSS(recv.PID); err != nil {
			return res, err
		}
	}
	stopChat := chatDuring(chatter, rnames[0], chatRate)
	t0, c0 := time.Now(), cpu.seconds()
	sent := sendFile(sender, tonames, size, rnames[0])
	err = run.awaitEnds(ctx, fmt.Errorf("file of %d bytes not delivered in %v", size, timeout))
	res.ServerCPU = cpu.seconds() - c0
	res.ChatSent = stopChat()
	res.RSSPeak = sendRSS.Peak()
	if apart {
		res.RecvRSSPeak = recvRSS.Peak()
	} else { // one server
		res.RecvRSSBase, res.RecvRSSPeak = res.RSSBase, res.RSSPeak
	}
	if err != nil {
		return res, err
	}
	if err := <-sent; err != nil {
		return res, err
	}
	res.Secs, res.MBps = transferRate(t0, run.doneAt, size)
	run.chat.await(&res)
	select {
	case at := <-nextAt:
		res.SenderNext = at.Sub(t0).Seconds()
	case <-ctx.Done():
		return res, fmt.Errorf("the sender's message after the file did not arrive in %v", timeout)
	}
	return res, nil
}

// recipientNames returns the names of r recipients of a run.
func recipientNames(prefix string, r int) []string {
	names := make([]string, r)
	for k := range names {
		names[k] = fmt.Sprintf("%sr%d", prefix, k)
	}
	return names
}

// fileRecipient returns the handlers, and the features to ask for, of
// recipient k of a size-byte file that comes as mode says: they call end
// once the file has come whole, or with what went wrong.
func fileRecipient(k int, size int64, mode string, end func(error)) (handlers, []string) {
	if mode != ModeChunked {
		return handlers{file: func(_, _ string, fr io.Reader) error {
			n, err := readAll(fr, make([]byte, fileReadChunk))
			if err == nil && n != size {
				err = fmt.Errorf("recipient %d got %d of %d bytes", k, n, size)
			}
			end(err)
			return err
		}}, nil
	}
	var got int64
	return handlers{
		fileBegin: func(uint64, int64) {},
		fileChunk: func(_ uint64, n int) { got += int64(n) },
		fileEnd: func(_ uint64, aborted bool) {
			var err error
			switch {
			case aborted:
				err = fmt.Errorf("recipient %d: file aborted", k)
			case got != size:
				err = fmt.Errorf("recipient %d got %d of %d bytes", k, got, size)
			}
			end(err)
		},
	}, []string{protocol.FeatureChunkedFile}
}

// slowRecipient returns the handlers, and the features to ask for, of a
// recipient that reads a file that comes as mode says at rate bytes per
// second.
func slowRecipient(rate int, mode string) (handlers, []string) {
	if mode != ModeChunked {
		return handlers{file: func(_, _ string, fr io.Reader) error {
			_, err := readAll(&throttled{r: fr, rate: rate, start: time.Now()}, make([]byte, fileReadChunk))
			return err
		}}, nil
	}
	var got int
	var start time.Time
	return handlers{
		fileBegin: func(uint64, int64) { start = time.Now() },
		fileChunk: func(_ uint64, n int) {
			got += n
			time.Sleep(time.Until(start.Add(time.Duration(float64(got) / float64(rate) * float64(time.Second)))))
		},
		fileEnd: func(uint64, bool) {},
	}, []string{protocol.FeatureChunkedFile}
}

// sendFile has sender send a file of size bytes to tonames, then a
// message to next stamped as sender 1's; the channel it returns gets the
// outcome.
func sendFile(sender *chatClient, tonames []string, size int64, next string) <-chan error {
	sent := make(chan error, 1)
	go func() {
		w := sender.w
		if _, err := w.Write(protocol.AppendFileHead(nil, protocol.SendFile, tonames, "bench.bin", size)); err != nil {
			sent <- err
			return
		}
		err := writeChunks(fileContent(), size, func(p []byte) error {
			_, err := w.Write(p)
			return err
		})
		if err != nil {
			sent <- err
			return
		}
		text := newText(32)
		putStamp(text, 1, now())
		if err := sender.writeMessage([]string{next}, text); err != nil {
			sent <- err
			return
		}
		sent <- w.Flush()
	}()
	return sent
}

// fileRun is what a run of either file workload (runFiles,
// runClientFiles) keeps of its recipients: their names, when each had the
// file, and the chat recipient 0 got meanwhile.
type fileRun struct {
	prefix string      // of every name in the run
	rnames []string    // the recipients'
	doneAt []time.Time // when each recipient ended
	done   chan error  // a recipient's end: nil once it has the file whole
	chat   chatTally   // recipient 0's
}

func newFileRun(r int) *fileRun {
	prefix := runPrefix()
	return &fileRun{
		prefix: prefix,
		rnames: recipientNames(prefix, r),
		doneAt: make([]time.Time, r),
		done:   make(chan error, r),
	}
}

// ended records the end of recipient k: err is nil once it has the file
// whole.
func (f *fileRun) ended(k int, err error) {
	f.doneAt[k] = time.Now()
	f.done <- err
}

// awaitEnds waits for every recipient's end, and returns the first that
// is an error, or late if ctx ends first.
func (f *fileRun) awaitEnds(ctx context.Context, late error) error {
	for range f.rnames {
		select {
		case err := <-f.done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return late
		}
	}
	return nil
}

// chatTally records the latency of the stamped chat messages that a
// recipient gets during a transfer.
type chatTally struct {
	mu   sync.Mutex
	hist Histogram // guarded by mu
	recv int64     // guarded by mu
}

func (c *chatTally) record(text []byte) {
	_, ts, ok := readStamp(text)
	lat := now() - ts
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.hist.Record(lat)
	}
	c.recv++
}

// await waits, at most 10 s, for the res.ChatSent messages (those queued
// behind the file arrive after it), and puts the tally in res.
func (c *chatTally) await(res *filesResult) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		n := c.recv
		c.mu.Unlock()
		if n >= res.ChatSent {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	res.ChatRecv = c.recv
	res.Chat = c.hist.Summary()
}

// tcpCopy is the files baseline: the same bytes written straight from a
// sender to r receivers over loopback TCP, in this process. It returns the
// seconds from the first write until every receiver has read them all.
func tcpCopy(ctx context.Context, size int64, r int, timeout time.Duration) (float64, error) {
	chunk := fileContent()
	return loopbackCopy(ctx, r, timeout, func(write func([]byte) error) error {
		return writeChunks(chunk, size, write)
	}, func(_ int, c net.Conn) error {
		n, err := readAll(c, make([]byte, fileReadChunk))
		if err == nil && n != size {
			err = fmt.Errorf("baseline receiver got %d of %d bytes", n, size)
		}
		return err
	})
}

// loopbackCopy is the plumbing of the files baselines: send writes bytes,
// through the write it is given, to r receivers over loopback TCP in this
// process, each of which takes them with receive (k is its index). It
// returns the seconds from the start of send until the last receiver is
// done. Every connection has timeout as its deadline.
func loopbackCopy(ctx context.Context, r int, timeout time.Duration, send func(write func([]byte) error) error, receive func(k int, c net.Conn) error) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	type end struct {
		at  time.Time
		err error
	}
	ends := make(chan end, r)
	var wg sync.WaitGroup
	defer func() {
		ln.Close() // ends the accept loop if not every receiver came
		wg.Wait()
	}()
	wg.Go(func() {
		for k := range r {
			c, err := ln.Accept()
			if err != nil {
				ends <- end{err: err}
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(timeout))
				err := receive(k, c)
				ends <- end{time.Now(), err}
			})
		}
	})
	conns := make([]net.Conn, r)
	for k := range conns {
		var d net.Dialer
		if conns[k], err = d.DialContext(ctx, "tcp", ln.Addr().String()); err != nil {
			return 0, err
		}
		defer conns[k].Close()
	}
	t0 := time.Now()
	err = send(func(p []byte) error {
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := c.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, c := range conns {
		c.(*net.TCPConn).CloseWrite()
	}
	last := t0
	for range r {
		e := <-ends
		if e.err != nil {
			return 0, e.err
		}
		if e.at.After(last) {
			last = e.at
		}
	}
	return last.Sub(t0).Seconds(), nil
}

// writeChunks writes size bytes, chunk after chunk, through write.
func writeChunks(chunk []byte, size int64, write func([]byte) error) error {
	for left := size; left > 0; {
		k := min(left, int64(len(chunk)))
		if err := write(chunk[:k]); err != nil {
			return err
		}
		left -= k
	}
	return nil
}

// chatDuring has chatter send to, at rate messages per second, 32-byte
// texts stamped with the time they were sent, until the function it
// returns is called; that returns how many were sent.
func chatDuring(chatter *chatClient, to string, rate int) (stop func() int64) {
	stopChat := make(chan struct{})
	chatDone := make(chan int64)
	go func() {
		text := newText(32)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		var sent int64
		for {
			select {
			case <-stopChat:
				chatDone <- sent
				return
			case <-tick.C:
			}
			putStamp(text, 0, now())
			if chatter.writeMessage([]string{to}, text) == nil && chatter.w.Flush() == nil {
				sent++
			}
		}
	}()
	return func() int64 {
		close(stopChat)
		return <-chatDone
	}
}

// throttled reads from r at about rate bytes per second: a recipient that
// reads slowly.
type throttled struct {
	r     io.Reader
	rate  int
	start time.Time
	total int
}

func (t *throttled) Read(p []byte) (int, error) {
	n, err := t.r.Read(p[:min(len(p), 64<<10)])
	t.total += n
	time.Sleep(time.Until(t.start.Add(time.Duration(float64(t.total) / float64(t.rate) * float64(time.Second)))))
	return n, err
}

// transferRate returns the seconds from t0 until the last of the
// recipients' ends, and the MB/s that makes for size bytes.
func transferRate(t0 time.Time, ends []time.Time, size int64) (secs, mbps float64) {
	last := t0
	for _, d := range ends {
		if d.After(last) {
			last = d
		}
	}
	secs = last.Sub(t0).Seconds()
	return secs, float64(size) / secs / 1e6
}

// The files workload.

func filesFlags(fs *pflag.FlagSet, c *Config) {
	fs.Var(int64List{&c.FileSizes}, "file-size", "files: file size (F)")
	fs.IntVar(&c.FileRecipients, "file-recipients", c.FileRecipients, "files: recipients of the file")
	fs.StringSliceVar(&c.FileModes, "file-mode", c.FileModes, "files: how the file goes: plain (one forward_file frame to in-process recipients), chunked (the chunked-file extension), clients (from a file to files, between client processes that sync what they save; baseline: a synced file-to-file TCP copy)")
	fs.StringSliceVar(&c.ClientBins, "client-bin", c.ClientBins, "files, mode clients: client binaries (gochat), each run in turn for an A/B comparison (default: this tool re-executed as the client)")
	fs.IntVar(&c.ChatRate, "chat-rate", c.ChatRate, "files: chat messages per second to a recipient during the transfer")
	fs.IntVar(&c.FileSlowRate, "file-slow-rate", c.FileSlowRate, "files: add a recipient (taking the file as --file-mode says) that reads it at this many bytes per second, not waited for; 0: none")
}

func filesRuns(cfg Config, stderr io.Writer) iter.Seq[job] {
	return func(yield func(job) bool) {
		for _, size := range cfg.FileSizes {
			for _, mode := range cfg.FileModes {
				if mode == ModeClients {
					if !clientFilesRuns(cfg, size, stderr, yield) {
						return
					}
					continue
				}
				if !yield(filesTrial(cfg, size, mode)) {
					return
				}
			}
		}
	}
}

// filesTrial is a run of the files workload in mode plain or chunked.
func filesTrial(cfg Config, size int64, mode string) job {
	r := cfg.FileRecipients
	params := fmt.Sprintf("size=%dB recipients=%d mode=%s chat-rate=%d/s", size, r, mode, cfg.ChatRate)
	if cfg.FileSlowRate > 0 {
		params += fmt.Sprintf(" slow-recipient=%dB/s", cfg.FileSlowRate)
	}
	t := trial[filesResult]{
		workload: Files,
		params:   params + " " + ownParam(cfg),
		ours: side[filesResult]{servers: ownServer(cfg, max(r+16, 64)), measure: func(ctx context.Context, nodes []*target) (filesResult, error) {
			return runFiles(ctx, nodes[0], nodes[0], size, r, cfg.ChatRate, cfg.FileSlowRate, mode, cfg.Timeout, nil)
		}},
		rows: func(row rowFunc, res, base filesResult) []Row {
			nan := math.NaN()
			rss := func(v int64) float64 {
				if !res.Weighed {
					return nan
				}
				return float64(v) / (1 << 20)
			}
			mbTarget, rssTarget, chatTarget := "", "", ""
			if size == 1<<30 && r == 1 {
				mbTarget, rssTarget, chatTarget = ">= 0.5x", "<= 32", "< 50"
			}
			return []Row{
				row("transfer", "MB/s", res.MBps, base.MBps, mbTarget),
				row("transfer time", "s", res.Secs, float64(size)/base.MBps/1e6, ""),
				row("server RSS before", "MiB", rss(res.RSSBase), nan, ""),
				row("server RSS growth (peak)", "MiB", rss(res.RSSPeak-res.RSSBase), nan, rssTarget),
				row("chat msgs sent during transfer", "msgs", float64(res.ChatSent), nan, ""),
				row("chat latency p50", "ms", ms(res.Chat.P50), nan, ""),
				row("chat latency p99", "ms", ms(res.Chat.P99), nan, chatTarget),
				row("chat latency max", "ms", ms(res.Chat.Max), nan, ""),
				row("sender's message after the file (from its start)", "s", res.SenderNext, nan, ""),
			}
		},
	}
	if !cfg.NoBaseline {
		t.baseName, t.base = "tcp-copy", &side[filesResult]{measure: func(ctx context.Context, _ []*target) (filesResult, error) {
			secs, err := tcpCopy(ctx, size, r, cfg.Timeout)
			return filesResult{Secs: secs, MBps: float64(size) / secs / 1e6}, err
		}}
	}
	return t
}

func clusterFilesRuns(cfg Config, _ io.Writer) iter.Seq[job] {
	r := cfg.FileRecipients
	return func(yield func(job) bool) {
		for _, size := range cfg.FileSizes {
			for _, mode := range cfg.FileModes {
				if mode == ModeClients {
					continue // it measures the client, the same against any server
				}
				params := fmt.Sprintf("size=%dB sender@n1 recipients=%d@n2 mode=%s chat-rate=%d/s %s", size, r, mode, cfg.ChatRate, clusterParams(cfg))
				t := clusterTrial(cfg, Files, params, max(r+16, 64), func(ctx context.Context, nodes []*target) (filesResult, error) {
					return runFiles(ctx, nodes[0], second(nodes), size, r, cfg.ChatRate, cfg.FileSlowRate, mode, cfg.Timeout, pidsOf(nodes))
				}, func(row rowFunc, ours, single filesResult) []Row {
					return clusterFilesRows(row, size, r, ours, single)
				})
				if !yield(t) {
					return
				}
			}
		}
	}
}

// clusterFilesRows are the rows of a files run of size bytes to r
// recipients on a cluster beside one node.
func clusterFilesRows(row rowFunc, size int64, r int, ours, single filesResult) []Row {
	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	target := ""
	if size == 1<<30 && r == 1 {
		target = ">= 0.5x"
	}
	return []Row{
		row("transfer", "MB/s", ours.MBps, single.MBps, target),
		row("transfer time", "s", ours.Secs, single.Secs, ""),
		row("server CPU per GB (all nodes)", "s", ours.ServerCPU/(float64(size)/1e9), single.ServerCPU/(float64(size)/1e9), ""),
		row("server RSS before (sender's node)", "MiB", mib(ours.RSSBase), mib(single.RSSBase), ""),
		row("RSS growth, peak (sender's node)", "MiB", mib(ours.RSSPeak-ours.RSSBase), mib(single.RSSPeak-single.RSSBase), ""),
		row("RSS growth, peak (recipients' node)", "MiB", mib(ours.RecvRSSPeak-ours.RecvRSSBase), mib(single.RecvRSSPeak-single.RecvRSSBase), ""),
		row("chat msgs sent during transfer", "msgs", float64(ours.ChatSent), float64(single.ChatSent), ""),
		row("chat latency p50", "ms", ms(ours.Chat.P50), ms(single.Chat.P50), ""),
		row("chat latency p99", "ms", ms(ours.Chat.P99), ms(single.Chat.P99), ""),
		row("chat latency max", "ms", ms(ours.Chat.Max), ms(single.Chat.Max), ""),
	}
}
