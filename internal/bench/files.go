package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

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
	prefix := runPrefix()
	rnames := make([]string, r)
	for k := range rnames {
		rnames[k] = fmt.Sprintf("%sr%d", prefix, k)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		chat     Histogram // guarded by mu
		chatRecv int64     // guarded by mu
		doneAt   = make([]time.Time, r)
		nextAt   = make(chan time.Time, 1) // the sender's message after the file, at recipient 0
		done     = make(chan error, r)
		conns    []*chatClient
	)
	defer func() {
		for _, c := range conns {
			c.nc.Close()
		}
		wg.Wait()
	}()
	dial := func(t *target, name string, h handlers, features ...string) (*chatClient, error) {
		c, err := dialChat(ctx, t.Addr, nil, name, 64<<10, 64<<10, features...)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.readLoop(h)
		}()
		return c, nil
	}
	for k := range r {
		h := handlers{file: func(_, _ string, fr io.Reader) error {
			n, err := readAll(fr, make([]byte, fileReadChunk))
			doneAt[k] = time.Now()
			if err == nil && n != size {
				err = fmt.Errorf("recipient %d got %d of %d bytes", k, n, size)
			}
			done <- err
			return err
		}}
		if k == 0 {
			h.msg = func(text []byte) {
				idx, ts, ok := readStamp(text)
				if ok && idx == 1 { // the sender's, after the file
					nextAt <- time.Now()
					return
				}
				lat := now() - ts
				mu.Lock()
				if ok {
					chat.Record(lat)
				}
				chatRecv++
				mu.Unlock()
			}
		}
		var features []string
		if mode == ModeChunked {
			features = []string{protocol.FeatureChunkedFile}
			var got int64
			h.file = nil
			h.fileBegin = func(uint64, int64) {}
			h.fileChunk = func(_ uint64, n int) { got += int64(n) }
			h.fileEnd = func(_ uint64, aborted bool) {
				doneAt[k] = time.Now()
				var err error
				switch {
				case aborted:
					err = fmt.Errorf("recipient %d: file aborted", k)
				case got != size:
					err = fmt.Errorf("recipient %d got %d of %d bytes", k, got, size)
				}
				done <- err
			}
		}
		if _, err := dial(recv, rnames[k], h, features...); err != nil {
			return res, err
		}
	}
	tonames := rnames
	if slowRate > 0 {
		tonames = append(rnames[:r:r], prefix+"slow")
		var features []string
		h := handlers{file: func(_, _ string, fr io.Reader) error {
			_, err := readAll(&throttled{r: fr, rate: slowRate, start: time.Now()}, make([]byte, fileReadChunk))
			return err
		}}
		if mode == ModeChunked {
			features = []string{protocol.FeatureChunkedFile}
			var got int
			var start time.Time
			h.file = nil
			h.fileBegin = func(uint64, int64) { start = time.Now() }
			h.fileChunk = func(_ uint64, n int) {
				got += n
				time.Sleep(time.Until(start.Add(time.Duration(float64(got) / float64(slowRate) * float64(time.Second)))))
			}
			h.fileEnd = func(uint64, bool) {}
		}
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
	if send.PID != 0 {
		if res.RSSBase, err = readRSS(send.PID); err != nil {
			return res, err
		}
		sendRSS = sampleRSS(send.PID, 10*time.Millisecond)
	}
	if recv.PID != 0 && recv.PID != send.PID {
		if res.RecvRSSBase, err = readRSS(recv.PID); err != nil {
			return res, err
		}
		recvRSS = sampleRSS(recv.PID, 10*time.Millisecond)
	}
	stopChat := chatDuring(chatter, rnames[0], chatRate)
	t0, c0 := time.Now(), cpu.seconds()
	sendErr := make(chan error, 1)
	go func() {
		w := sender.w
		if _, err := w.Write(protocol.AppendFileHead(nil, protocol.SendFile, tonames, "bench.bin", size)); err != nil {
			sendErr <- err
			return
		}
		chunk := fileContent()
		for left := size; left > 0; {
			k := min(left, int64(len(chunk)))
			if _, err := w.Write(chunk[:k]); err != nil {
				sendErr <- err
				return
			}
			left -= k
		}
		next := newText(32)
		putStamp(next, 1, now())
		if err := sender.writeMessage(rnames[:1], next); err != nil {
			sendErr <- err
			return
		}
		sendErr <- w.Flush()
	}()
	var firstErr error
	for range r {
		select {
		case err := <-done:
			if err != nil && firstErr == nil {
				firstErr = err
			}
		case <-ctx.Done():
			firstErr = fmt.Errorf("file of %d bytes not delivered in %v", size, timeout)
		}
		if firstErr != nil {
			break
		}
	}
	res.ServerCPU = cpu.seconds() - c0
	res.ChatSent = stopChat()
	if sendRSS != nil {
		res.RSSPeak = sendRSS.Peak()
	}
	if recvRSS != nil {
		res.RecvRSSPeak = recvRSS.Peak()
	} else { // one server
		res.RecvRSSBase, res.RecvRSSPeak = res.RSSBase, res.RSSPeak
	}
	if firstErr != nil {
		return res, firstErr
	}
	if err := <-sendErr; err != nil {
		return res, err
	}
	res.Secs, res.MBps = transferRate(t0, doneAt, size)
	// Chat messages queued behind the file arrive after it; wait for them.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := chatRecv
		mu.Unlock()
		if n >= res.ChatSent {
			break
		}
	}
	select {
	case at := <-nextAt:
		res.SenderNext = at.Sub(t0).Seconds()
	case <-ctx.Done():
		return res, fmt.Errorf("the sender's message after the file did not arrive in %v", timeout)
	}
	mu.Lock()
	res.ChatRecv = chatRecv
	res.Chat = chat.Summary()
	mu.Unlock()
	return res, nil
}

// tcpCopy is the files baseline: the same bytes written straight from a
// sender to r receivers over loopback TCP, in this process. It returns the
// seconds from the first write until every receiver has read them all.
func tcpCopy(ctx context.Context, size int64, r int, timeout time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	done := make(chan error, r)
	var ends sync.Map
	go func() {
		for k := range r {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			go func() {
				defer c.Close()
				n, err := readAll(c, make([]byte, fileReadChunk))
				ends.Store(k, time.Now())
				if err == nil && n != size {
					err = fmt.Errorf("baseline receiver got %d of %d bytes", n, size)
				}
				done <- err
			}()
		}
	}()
	conns := make([]net.Conn, r)
	for k := range conns {
		var d net.Dialer
		if conns[k], err = d.DialContext(ctx, "tcp", ln.Addr().String()); err != nil {
			return 0, err
		}
		defer conns[k].Close()
	}
	chunk := fileContent()
	t0 := time.Now()
	go func() {
		for left := size; left > 0; {
			k := min(left, int64(len(chunk)))
			for _, c := range conns {
				c.SetWriteDeadline(time.Now().Add(timeout))
				if _, err := c.Write(chunk[:k]); err != nil {
					return
				}
			}
			left -= k
		}
		for _, c := range conns {
			c.(*net.TCPConn).CloseWrite()
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for range r {
		select {
		case err := <-done:
			if err != nil {
				return 0, err
			}
		case <-timer.C:
			return 0, errors.New("baseline copy timed out")
		}
	}
	last := t0
	ends.Range(func(_, v any) bool {
		if t := v.(time.Time); t.After(last) {
			last = t
		}
		return true
	})
	return last.Sub(t0).Seconds(), nil
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
