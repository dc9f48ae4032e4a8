// Package soak holds the opt-in soak test: many clients chatting with the
// real server binary for minutes, checking that every accepted message is
// delivered exactly once and in order, that the server's goroutines and
// file descriptors return to their baseline afterwards, that it printed
// exactly one stdout line per join, message and disconnect, and that it
// exits 0 on SIGINT without reporting a data race.
//
// Run it with
//
//	CHAT_SOAK=1 go test -run Soak -timeout 30m -v ./test/soak/
//
// CHAT_SOAK_CLIENTS (default 1000) and CHAT_SOAK_DURATION (default 10m)
// change its size.
package soak

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// metric returns one unlabelled metric of the Prometheus endpoint at url.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	v, ok := testbin.Metrics(t, url)[name]
	if !ok {
		t.Fatalf("metric %s not found", name)
	}
	return v
}

// member is one soak client: a raw protocol connection, the shared test
// client of internal/chattest. Its reader and sender goroutines record
// errors instead of failing the test, so they use its error-returning
// ReadFrame and TryWrite.
type member struct {
	id   int
	name string
	conn *chattest.Conn

	wmu sync.Mutex // serialises writes
	// sentTo[r] counts messages this member sent that name r (once each).
	sentTo []atomic.Int64
	seq    int64 // owned by the sender goroutine

	// Owned by the reader goroutine until it ends.
	gotFrom  []int64 // messages received from each sender
	lastFrom []int64 // last sequence number received from each sender
	errs     []string
}

func TestSoak(t *testing.T) {
	if os.Getenv("CHAT_SOAK") == "" {
		t.Skip("set CHAT_SOAK=1 to run the soak test")
	}
	n := testbin.EnvInt("CHAT_SOAK_CLIENTS", 1000)
	duration := 10 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("CHAT_SOAK_DURATION")); err == nil && d > 0 {
		duration = d
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "gochatd")
	if err := testbin.Build(bin, "./cmd/gochatd"); err != nil {
		t.Fatal(err)
	}
	port, mport := testbin.FreePort(t), testbin.FreePort(t)
	srv := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "--max-clients", strconv.Itoa(n+10),
		"--metrics-addr", "127.0.0.1:"+strconv.Itoa(mport), "--log-level", "warn")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer // stderr, also shown as it comes
	srv.Stderr = io.MultiWriter(os.Stderr, &logs)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	tally := newTally(n)
	exited := make(chan error, 1)
	go func() {
		tally.run(stdout) // until the server closes its stdout
		exited <- srv.Wait()
	}()
	reaped := false // the test has received from exited
	t.Cleanup(func() {
		if !reaped {
			srv.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	murl := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	poll := time.NewTicker(100 * time.Millisecond) // for what has no event: a listener, metrics
	defer poll.Stop()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server never listened")
		}
		<-poll.C
	}
	baseG, baseFD := metric(t, murl, "go_goroutines"), metric(t, murl, "process_open_fds")

	members := make([]*member, n)
	for i := range members {
		name := fmt.Sprintf("u%d", i)
		m := &member{id: i, name: name, conn: chattest.Dial(t, addr, name),
			sentTo: make([]atomic.Int64, n), gotFrom: make([]int64, n), lastFrom: make([]int64, n)}
		// A member reads and writes for the whole run, and waits up to a
		// minute for the last messages to arrive.
		m.conn.Timeout = duration + 3*time.Minute
		m.conn.Join(name)
		members[i] = m
	}
	select {
	case <-tally.allJoined:
	case err := <-exited:
		reaped = true
		t.Fatalf("server exited (%v) before every member joined", err)
	case <-time.After(time.Minute):
		t.Fatalf("after a minute the server printed %d join lines of %d", tally.counts().joins, n)
	}
	t.Logf("%d members joined; baseline goroutines %.0f, fds %.0f", n, baseG, baseFD)

	var readers sync.WaitGroup
	var received atomic.Int64
	progress := make(chan struct{}, 1) // a delivery was counted
	for _, m := range members {
		readers.Add(1)
		go func() {
			defer readers.Done()
			m.read(&received, progress)
		}()
	}

	// Each member sends about 2 messages a second to 1-3 random members.
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var senders sync.WaitGroup
	var sent, frames atomic.Int64 // deliveries, and send_message frames (one `msg:` line each)
	start := time.Now()
	for _, m := range members {
		senders.Add(1)
		go func() {
			defer senders.Done()
			rng := rand.New(rand.NewPCG(uint64(m.id), 42))
			tick := time.NewTicker(time.Duration(400+rng.IntN(200)) * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				k := 1 + rng.IntN(3)
				names := make([]string, 0, k)
				ids := make([]int, 0, k)
				for range k {
					r := rng.IntN(n)
					names = append(names, members[r].name)
					ids = append(ids, r)
				}
				m.seq++
				text := fmt.Sprintf("q%d pad %s", m.seq, strings.Repeat("x", rng.IntN(64)))
				m.wmu.Lock()
				err := m.conn.TryWrite(protocol.AppendMessage(nil, protocol.SendMessage, names, []byte(text)))
				m.wmu.Unlock()
				if err != nil {
					t.Errorf("%s: write: %v", m.name, err)
					return
				}
				frames.Add(1)
				seen := map[int]bool{}
				for _, r := range ids {
					if !seen[r] {
						seen[r] = true
						m.sentTo[r].Add(1)
						sent.Add(1)
					}
				}
			}
		}()
	}
	senders.Wait()
	elapsed := time.Since(start)
	// Let every accepted message arrive before anyone leaves.
	settle := time.NewTimer(time.Minute)
	defer settle.Stop()
arrive:
	for received.Load() < sent.Load() {
		select {
		case <-progress:
		case <-settle.C:
			break arrive
		}
	}
	t.Logf("sent %d deliveries in %d frames in %v (%.0f/s); received %d",
		sent.Load(), frames.Load(), elapsed.Round(time.Second), float64(sent.Load())/elapsed.Seconds(), received.Load())

	for _, m := range members {
		m.wmu.Lock()
		if err := m.conn.TryWrite(protocol.AppendJoin(nil, protocol.Disconnect, m.name)); err != nil {
			t.Errorf("%s: disconnect: %v", m.name, err)
		}
		m.wmu.Unlock()
	}
	readers.Wait()
	for _, m := range members {
		m.conn.NC.Close()
		for _, e := range m.errs {
			t.Error(e)
		}
	}
	lost, dup := 0, 0
	for _, r := range members {
		for _, s := range members {
			want, got := s.sentTo[r.id].Load(), r.gotFrom[s.id]
			if got < want {
				lost += int(want - got)
			} else if got > want {
				dup += int(got - want)
			}
		}
	}
	if lost > 0 || dup > 0 {
		t.Errorf("%d deliveries lost, %d duplicated", lost, dup)
	}

	for deadline := time.Now().Add(30 * time.Second); ; {
		g, fd, users := metric(t, murl, "go_goroutines"), metric(t, murl, "process_open_fds"), metric(t, murl, "chat_users")
		if users == 0 && g <= baseG+5 && fd <= baseFD+5 {
			t.Logf("after: goroutines %.0f (baseline %.0f), fds %.0f (baseline %.0f)", g, baseG, fd, baseFD)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back to baseline: users %.0f, goroutines %.0f (baseline %.0f), fds %.0f (baseline %.0f)", users, g, baseG, fd, baseFD)
		}
		<-poll.C
	}

	// SIGINT: the server exits 0, and its stdout holds exactly one line per
	// join, message and disconnect.
	if err := srv.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		reaped = true
		if err != nil {
			t.Errorf("server after SIGINT: %v, want exit status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server still running 30 s after SIGINT")
	}
	if b := logs.String(); strings.Contains(b, "WARNING: DATA RACE") || strings.Contains(b, "panic: ") {
		t.Errorf("server reported a data race or a panic on stderr")
	}
	c := tally.counts()
	t.Logf("server printed %d join, %d msg and %d disconnected lines, %d others", c.joins, c.msgs, c.disconnects, c.otherN)
	if c.joins != n || c.msgs != int(frames.Load()) || c.disconnects != n || c.otherN != 0 {
		t.Errorf("server stdout: %d join, %d msg, %d disconnected lines and %d others (first: %q); want %d, %d, %d and 0",
			c.joins, c.msgs, c.disconnects, c.otherN, c.other, n, frames.Load(), n)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and other readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tally counts the server's stdout lines by kind: `join: uN`, `msg: uN`
// and `disconnected: uN`, the only lines a soak run may cause.
type tally struct {
	want      int           // members
	allJoined chan struct{} // closed once want join lines were printed

	mu sync.Mutex
	c  tallyCounts // guarded by mu
}

type tallyCounts struct {
	joins, msgs, disconnects int
	otherN                   int
	other                    []string // the first few other lines
}

func newTally(want int) *tally {
	return &tally{want: want, allJoined: make(chan struct{})}
}

// run counts the lines of r until it ends.
func (t *tally) run(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		kind, name, _ := strings.Cut(line, ": ")
		_, err := strconv.ParseUint(strings.TrimPrefix(name, "u"), 10, 32)
		member := strings.HasPrefix(name, "u") && err == nil
		t.mu.Lock()
		switch {
		case member && kind == "join":
			t.c.joins++
			if t.c.joins == t.want {
				close(t.allJoined)
			}
		case member && kind == "msg":
			t.c.msgs++
		case member && kind == "disconnected":
			t.c.disconnects++
		default:
			t.c.otherN++
			if len(t.c.other) < 5 {
				t.c.other = append(t.c.other, line)
			}
		}
		t.mu.Unlock()
	}
}

func (t *tally) counts() tallyCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.c
	c.other = slices.Clone(c.other)
	return c
}

// read consumes frames until the server closes the connection, checking
// the per-sender order; progress is signalled after each delivery.
func (m *member) read(received *atomic.Int64, progress chan<- struct{}) {
	index := func(name string) int {
		v, err := strconv.Atoi(strings.TrimPrefix(name, "u"))
		if err != nil || v < 0 || v >= len(m.gotFrom) {
			return -1
		}
		return v
	}
	for {
		h, p, err := m.conn.ReadFrame()
		if err != nil {
			if err != io.EOF {
				m.errs = append(m.errs, fmt.Sprintf("%s: read: %v", m.name, err))
			}
			return
		}
		if h.Type != protocol.ForwardMessage {
			m.errs = append(m.errs, fmt.Sprintf("%s: unexpected %s %q", m.name, h.Name, p))
			continue
		}
		sender, text, err := protocol.ParseForward(p)
		s := index(sender)
		if err != nil || s < 0 {
			m.errs = append(m.errs, fmt.Sprintf("%s: bad forward %q", m.name, p))
			continue
		}
		field, _, _ := strings.Cut(string(text), " ")
		seq, err := strconv.ParseInt(strings.TrimPrefix(field, "q"), 10, 64)
		if err != nil || seq <= m.lastFrom[s] {
			m.errs = append(m.errs, fmt.Sprintf("%s: from %s seq %d after %d", m.name, sender, seq, m.lastFrom[s]))
		}
		m.lastFrom[s] = seq
		m.gotFrom[s]++
		received.Add(1)
		select {
		case progress <- struct{}{}:
		default:
		}
	}
}
