package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// abuseServer is a server with metrics, for the abuse suite.
type abuseServer struct {
	*server
	metrics string // URL of /metrics
	baseG   float64
	baseRSS float64
}

func startAbuseServer(t *testing.T) *abuseServer {
	mport := testbin.FreePort(t)
	srv := startServer(t, "--join-timeout", "1s", "--send-queue", "1M", "--stall-timeout", "3s", "--max-clients", "200",
		"--metrics-addr", "127.0.0.1:"+strconv.Itoa(mport), "--log-level", "warn")
	a := &abuseServer{server: srv, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)}
	m := a.waitMetrics(t, func(m map[string]float64) bool { return m["go_goroutines"] > 0 })
	a.baseG, a.baseRSS = m["go_goroutines"], m["process_resident_memory_bytes"]
	t.Logf("baseline: %.0f goroutines, %.1f MiB RSS", a.baseG, a.baseRSS/(1<<20))
	return a
}

// waitMetrics polls the server's metrics until ok accepts them.
func (a *abuseServer) waitMetrics(t *testing.T, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(3 * timeout)
	tick := time.NewTicker(50 * time.Millisecond) // the metrics endpoint is polled; it has no events
	defer tick.Stop()
	for {
		m := testbin.Metrics(t, a.metrics)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never settled: goroutines %.0f, users %.0f, connections %.0f, RSS %.1f MiB",
				m["go_goroutines"], m["chat_users"], m["chat_connections"], m["process_resident_memory_bytes"]/(1<<20))
		}
		<-tick.C
	}
}

// settled checks that the server still chats and that its connections,
// goroutines and memory are back near the baseline.
func (a *abuseServer) settled(t *testing.T) {
	t.Helper()
	a.serving(t)
	m := a.waitMetrics(t, func(m map[string]float64) bool {
		return m["chat_connections"] == 0 && m["go_goroutines"] <= a.baseG+3
	})
	rss := m["process_resident_memory_bytes"]
	t.Logf("after: %.0f goroutines, %.1f MiB RSS", m["go_goroutines"], rss/(1<<20))
	if rss > a.baseRSS+96<<20 {
		t.Errorf("RSS %.1f MiB, more than 96 MiB over the baseline %.1f MiB", rss/(1<<20), a.baseRSS/(1<<20))
	}
}

// join joins a raw connection as name; server lines are searched
// leniently, since other lines may come between.
func (a *abuseServer) join(t *testing.T, name string) *chattest.Conn {
	t.Helper()
	rc := dialRaw(t, a.port, name)
	rc.Write(fr("join", name))
	a.out.skipTo(t, "join: "+name, timeout)
	return rc
}

// client starts a real client joined as name.
func (a *abuseServer) client(t *testing.T, name string) *client {
	t.Helper()
	c := startClient(t, a.port, name)
	a.out.skipTo(t, "join: "+name, timeout)
	return c
}

// leave quits a real client.
func leave(t *testing.T, c *client) {
	t.Helper()
	c.send(t, "quit")
	c.out.waitLine(t, "quitting", timeout)
	c.expectExit(t, 0, timeout)
}

// serving checks that two real clients can still chat.
func (a *abuseServer) serving(t *testing.T) {
	t.Helper()
	na, nb := a.freshName("okA"), a.freshName("okB")
	ca, cb := a.client(t, na), a.client(t, nb)
	ca.send(t, "msg 1 "+nb+" still serving")
	cb.out.waitLine(t, "msg: "+na+": still serving", timeout)
	leave(t, ca)
	leave(t, cb)
	// Their lines, so that nothing of this check is left for the next.
	a.out.waitUnordered(t, timeout, []string{"msg: " + na, "disconnected: " + na, "disconnected: " + nb})
	a.requireRunning(t)
}

func TestAbuse(t *testing.T) {
	a := startAbuseServer(t)
	port := a.port

	refused := func(t *testing.T, label string, b []byte, joinFirst bool) {
		t.Helper()
		var rc *chattest.Conn
		name := a.freshName("ab")
		if joinFirst {
			rc = a.join(t, name)
		} else {
			rc = dialRaw(t, port, label)
		}
		rc.Write(b)
		rc.Expect(protocol.ErrUnknownMessage, "")
		rc.ExpectClosed()
		if joinFirst {
			a.out.skipTo(t, "disconnected: "+name+" sent unknown command", timeout)
		}
	}

	t.Run("oversize length", func(t *testing.T) {
		refused(t, "oversize", []byte("send_message 999999999999 "), true)
		refused(t, "oversize-file", []byte("send_file 99999999999999 "), true)
		a.settled(t)
	})
	t.Run("bad lengths", func(t *testing.T) {
		for _, b := range []string{"send_message abc ", "send_message -5 ", "send_message 0x10 ", "send_message 1e3 ", "send_message  5 "} {
			refused(t, "badlen", []byte(b), true)
		}
		a.settled(t)
	})
	t.Run("invalid utf-8 text", func(t *testing.T) {
		refused(t, "utf8", fr("send_message", "1 nobody \xff\xfe"), true)
		refused(t, "surrogate", fr("send_message", "1 nobody \xed\xa0\x80"), true)
		a.settled(t)
	})
	t.Run("header without end", func(t *testing.T) {
		refused(t, "endless", bytes.Repeat([]byte("a"), 4096), false)
		refused(t, "endless-len", []byte("join "+strings.Repeat("1", 70)), false) // past the 64 digits a length may have
		a.settled(t)
	})
	t.Run("pre-join garbage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for range 20 {
			junk := make([]byte, 1+rng.IntN(512))
			for i := range junk {
				junk[i] = byte(rng.IntN(256))
			}
			junk[0] = 'Z' // never a valid type byte, so always refused
			refused(t, "garbage", junk, false)
		}
		a.settled(t)
	})
	t.Run("never joining", func(t *testing.T) {
		conns := make([]*chattest.Conn, 300)
		for i := range conns {
			conns[i] = dialRaw(t, port, "idle")
		}
		for _, rc := range conns {
			rc.Timeout = 3 * timeout
			rc.ExpectClosed() // the 1 s join timeout
		}
		a.settled(t)
	})
	t.Run("never reading", func(t *testing.T) {
		sinkName := a.freshName("sink")
		sink := a.join(t, sinkName)
		sink.TCP().SetReadBuffer(4096)
		sender := a.join(t, a.freshName("flood"))
		text := strings.Repeat("x", 60000)
		before := testbin.Metrics(t, a.metrics)["chat_slow_consumers_total"]
		// Others chat normally while the sink's queue fills.
		ca, cb := a.freshName("chatA"), a.freshName("chatB")
		A, B := a.client(t, ca), a.client(t, cb)
		for i := 0; ; i++ {
			if i > 2000 {
				t.Fatal("the sink was never cut off")
			}
			if err := sender.TryWrite(fr("send_message", "1 "+sinkName+" "+text)); err != nil {
				t.Fatalf("sender blocked: %v", err)
			}
			if i%20 == 0 {
				A.send(t, "msg 1 "+cb+" ping "+strconv.Itoa(i))
				B.out.waitLine(t, "msg: "+ca+": ping "+strconv.Itoa(i), timeout)
				if testbin.Metrics(t, a.metrics)["chat_slow_consumers_total"] > before {
					break
				}
			}
		}
		a.out.skipTo(t, "disconnected: "+sinkName, timeout)
		leave(t, A)
		leave(t, B)
		sender.Write(fr("disconnect", sender.Name))
		sender.ExpectClosed()
		a.settled(t)
	})
	t.Run("flood", func(t *testing.T) {
		fromName, toName := a.freshName("flooder"), a.freshName("target")
		from, to := a.join(t, fromName), a.join(t, toName)
		const n = 15000 // past the default burst of 10000, so flood control paces it
		var batch []byte
		for i := range n {
			batch = append(batch, fr("send_message", "1 "+toName+" m"+strconv.Itoa(i))...)
		}
		go from.NC.Write(batch) // may be paced by flood control; nothing is dropped
		// Another pair chats meanwhile.
		ca, cb := a.freshName("calmA"), a.freshName("calmB")
		A, B := a.client(t, ca), a.client(t, cb)
		A.send(t, "msg 1 "+cb+" calm")
		B.out.waitLine(t, "msg: "+ca+": calm", timeout)
		to.Timeout = 3 * timeout
		for i := range n {
			h, p, err := to.ReadFrame()
			want := "1 " + fromName + " m" + strconv.Itoa(i)
			if err != nil || h.Type != protocol.ForwardMessage || string(p) != want {
				t.Fatalf("flood message %d: got %s %q %v, want %q", i, h.Name, p, err, want)
			}
		}
		leave(t, A)
		leave(t, B)
		for _, rc := range []*chattest.Conn{from, to} {
			rc.Write(fr("disconnect", rc.Name))
			rc.ExpectClosed()
		}
		a.settled(t)
	})
	t.Run("10000 connect-disconnect cycles", func(t *testing.T) {
		const cycles, workers = 10000, 8
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > cycles {
						return
					}
					if err := cycle(port, "cyc"+strconv.FormatInt(i, 10)); err != nil {
						errs <- fmt.Errorf("cycle %d: %w", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		a.settled(t)
	})
	t.Run("100 concurrent joins of one name", func(t *testing.T) {
		const n, name = 100, "samename"
		// All at once, each connection is opened and sends its join (at
		// once: the server's join timeout is 1 s), then reads until the
		// server closes it. A refused one gets exactly the error frame and
		// a clean close; the one admitted gets nothing and stays open.
		type answer struct {
			c    *net.TCPConn
			data []byte
			err  error
		}
		dialed := make(chan answer, n)  // each connection, once its join is sent
		answers := make(chan answer, n) // what each read until it ended
		begin := make(chan struct{})
		for range n {
			go func() {
				<-begin
				nc, err := net.DialTimeout("tcp", a.addr(), timeout)
				if err != nil {
					dialed <- answer{err: err}
					return
				}
				c := nc.(*net.TCPConn)
				if _, err := c.Write(fr("join", name)); err != nil {
					c.Close()
					dialed <- answer{err: err}
					return
				}
				dialed <- answer{c: c}
				if err := c.SetReadDeadline(time.Now().Add(6 * timeout)); err != nil {
					answers <- answer{c, nil, err}
					return
				}
				data, err := io.ReadAll(c) // nil error at a clean close (EOF)
				answers <- answer{c, data, err}
			}()
		}
		close(begin)
		pending := make(map[*net.TCPConn]bool, n)
		for range n {
			d := <-dialed
			if d.err != nil {
				t.Fatalf("joining: %v", d.err)
			}
			t.Cleanup(func() { d.c.Close() })
			pending[d.c] = true
		}
		// The server admits the name once and refuses it n-1 times, and
		// prints nothing else meanwhile.
		joins, refusals := 0, 0
		for joins+refusals < n {
			switch l := a.out.nextLine(t, 3*timeout); {
			case l == "join: "+name:
				joins++
			case l == "disconnected: username not available":
				refusals++
			default:
				t.Fatalf("unexpected server line %s after %d joins and %d refusals", quote(l), joins, refusals)
			}
		}
		if joins != 1 {
			t.Fatalf("the server printed `join: %s` %d times and refused it %d times; want 1 and %d", name, joins, refusals, n-1)
		}
		for range n - 1 {
			r := <-answers
			delete(pending, r.c)
			if r.err != nil || string(r.data) != "err_username_unavailable 0 " {
				t.Fatalf("connection %v: got %q then %v; want exactly the frame %q and a clean close",
					r.c.LocalAddr(), r.data, r.err, "err_username_unavailable 0 ")
			}
		}
		// The one left is the winner: silent and still open.
		var winner *net.TCPConn
		for c := range pending {
			winner = c
		}
		if err := winner.SetReadDeadline(time.Now()); err != nil {
			t.Fatal(err)
		}
		if r := <-answers; len(r.data) != 0 || !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("the admitted connection got %q then %v; want nothing, still open", r.data, r.err)
		}
		w := wrapRaw(t, name, winner)
		w.Write(fr("send_message", "1 "+name+" it is mine"))
		w.Expect(protocol.ForwardMessage, "1 "+name+" it is mine")
		w.Write(fr("disconnect", name))
		w.ExpectClosed()
		a.out.waitLines(t, timeout, "msg: "+name, "disconnected: "+name)
		if got := slices.Index(a.out.remainingAll(), "join: "+name); got < 0 || slices.Contains(a.out.remainingAll()[got+1:], "join: "+name) {
			t.Fatalf("`join: %s` printed other than once\n%s", name, a.dump())
		}
		a.settled(t)
	})
}

// cycle joins as name and disconnects at once, reading until the server
// closes the connection.
func cycle(port int, name string) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(append(fr("join", name), fr("disconnect", name)...)); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	var buf [64]byte
	for {
		n, err := c.Read(buf[:])
		if n > 0 {
			return fmt.Errorf("unexpected bytes %q", buf[:n])
		}
		if err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
	}
}
