package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// timeout is the default deadline of every wait in the suite. It is generous
// because CI runs the suite with -race on a 2-core machine.
const timeout = 10 * time.Second

// ---------------------------------------------------------------------------
// lineLog: one captured output stream of a child process.
// ---------------------------------------------------------------------------

// lineLog collects the lines that a process writes to one output stream.
// A line is everything up to a "\n" (the "\n" is removed, nothing else is: a
// "\r" before it stays part of the line, so a CRLF-printing program fails the
// exact comparisons). Bytes after the last "\n" when the stream ends are kept
// apart (tail) and never count as a line.
//
// Waiting semantics: a lineLog has a cursor. waitLine is CONSUME-IN-ORDER and
// strict: the next unconsumed line must be exactly the wanted one; if a
// different line comes first the test fails at once (so any unexpected extra
// stdout line is caught). skipTo is the lenient form (search from the cursor,
// skipping lines, which it returns). Both move the cursor past the match.
type lineLog struct {
	label string
	owner *proc

	mu     sync.Mutex
	lines  []string
	tail   string
	eof    bool
	notify chan struct{} // closed and replaced on every change
	cursor int
}

func newLineLog(label string, owner *proc) *lineLog {
	return &lineLog{label: label, owner: owner, notify: make(chan struct{})}
}

func (l *lineLog) changed() {
	close(l.notify)
	l.notify = make(chan struct{})
}

// run reads r until EOF; it is the only goroutine writing to l.
func (l *lineLog) run(r *os.File, wg *sync.WaitGroup) {
	defer wg.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		s, err := br.ReadString('\n')
		l.mu.Lock()
		if err == nil {
			l.lines = append(l.lines, s[:len(s)-1])
		} else {
			l.tail = s
			l.eof = true
		}
		l.changed()
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// state returns the wake-up channel with the lock held by the caller.
func (l *lineLog) wait(ch <-chan struct{}, deadline <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	case <-deadline:
		return false
	}
}

// waitLine waits until the next unconsumed line arrives and requires it to be
// exactly want.
func (l *lineLog) waitLine(t testing.TB, want string, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.cursor < len(l.lines) {
			got := l.lines[l.cursor]
			if got == want {
				l.cursor++
				l.mu.Unlock()
				return
			}
			idx := l.cursor
			l.mu.Unlock()
			t.Fatalf("%s: line %d: want %s, got %s\n%s", l.label, idx+1, quote(want), quote(got), l.owner.dump())
		}
		if l.eof {
			l.mu.Unlock()
			t.Fatalf("%s: want line %s, but the stream ended\n%s", l.label, quote(want), l.owner.dump())
		}
		ch := l.notify
		l.mu.Unlock()
		if !l.wait(ch, timer.C) {
			t.Fatalf("%s: timed out after %v waiting for line %s\n%s", l.label, d, quote(want), l.owner.dump())
		}
	}
}

// waitLines is waitLine for each of wants, in order.
func (l *lineLog) waitLines(t testing.TB, d time.Duration, wants ...string) {
	t.Helper()
	for _, w := range wants {
		l.waitLine(t, w, d)
	}
}

// nextLine waits for the next unconsumed line and returns it, whatever it is.
func (l *lineLog) nextLine(t testing.TB, d time.Duration) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.cursor < len(l.lines) {
			got := l.lines[l.cursor]
			l.cursor++
			l.mu.Unlock()
			return got
		}
		if l.eof {
			l.mu.Unlock()
			t.Fatalf("%s: want another line, but the stream ended\n%s", l.label, l.owner.dump())
		}
		ch := l.notify
		l.mu.Unlock()
		if !l.wait(ch, timer.C) {
			t.Fatalf("%s: timed out after %v waiting for another line\n%s", l.label, d, l.owner.dump())
		}
	}
}

// skipTo searches from the cursor for want, and returns the lines skipped.
func (l *lineLog) skipTo(t testing.TB, want string, d time.Duration) []string {
	t.Helper()
	var skipped []string
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		for l.cursor < len(l.lines) {
			got := l.lines[l.cursor]
			l.cursor++
			if got == want {
				l.mu.Unlock()
				return skipped
			}
			skipped = append(skipped, got)
		}
		if l.eof {
			l.mu.Unlock()
			t.Fatalf("%s: want line %s, but the stream ended\n%s", l.label, quote(want), l.owner.dump())
		}
		ch := l.notify
		l.mu.Unlock()
		if !l.wait(ch, timer.C) {
			t.Fatalf("%s: timed out after %v searching for line %s\n%s", l.label, d, quote(want), l.owner.dump())
		}
	}
}

// waitUnordered consumes lines until every line of want has been seen, in any
// order (each as often as it is listed). Lines listed in allowed may appear
// any number of times in between; any other line fails the test.
func (l *lineLog) waitUnordered(t testing.TB, d time.Duration, want []string, allowed ...string) {
	t.Helper()
	missing := slices.Clone(want)
	deadline := time.Now().Add(d)
	for len(missing) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: timed out after %v; still missing %s\n%s", l.label, d, quote(strings.Join(missing, " | ")), l.owner.dump())
		}
		got := l.nextLine(t, left)
		if i := slices.Index(missing, got); i >= 0 {
			missing = slices.Delete(missing, i, i+1)
			continue
		}
		if slices.Contains(allowed, got) {
			continue
		}
		t.Fatalf("%s: unexpected line %s while waiting for %s\n%s", l.label, quote(got), quote(strings.Join(missing, " | ")), l.owner.dump())
	}
}

// count returns the number of complete lines so far.
func (l *lineLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// waitCount waits until at least n complete lines have been written.
func (l *lineLog) waitCount(t testing.TB, n int, d time.Duration, why string) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if len(l.lines) >= n {
			l.mu.Unlock()
			return
		}
		eof := l.eof
		ch := l.notify
		l.mu.Unlock()
		if eof {
			t.Fatalf("%s: want at least %d lines (%s), but the stream ended\n%s", l.label, n, why, l.owner.dump())
		}
		if !l.wait(ch, timer.C) {
			t.Fatalf("%s: timed out after %v waiting for at least %d lines (%s)\n%s", l.label, d, n, why, l.owner.dump())
		}
	}
}

// wroteAnything reports whether the stream has had any bytes so far.
func (l *lineLog) wroteAnything() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines) > 0 || l.tail != ""
}

// contains reports whether any line seen so far equals s (cursor ignored).
func (l *lineLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.lines, s)
}

// expectEnd waits until the stream ends and requires that no unconsumed line
// (and no unterminated tail) is left.
func (l *lineLog) expectEnd(t testing.TB, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.eof {
			extra := slices.Clone(l.lines[l.cursor:])
			tail := l.tail
			l.mu.Unlock()
			if len(extra) > 0 || tail != "" {
				t.Fatalf("%s: unexpected output at the end: lines %s, unterminated tail %s\n%s", l.label, quoteAll(extra), quote(tail), l.owner.dump())
			}
			return
		}
		ch := l.notify
		l.mu.Unlock()
		if !l.wait(ch, timer.C) {
			t.Fatalf("%s: timed out after %v waiting for the stream to end\n%s", l.label, d, l.owner.dump())
		}
	}
}

// waitClosed waits until the stream has ended (the process closed it).
func (l *lineLog) waitClosed(t testing.TB, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		eof, ch := l.eof, l.notify
		l.mu.Unlock()
		if eof {
			return
		}
		if !l.wait(ch, timer.C) {
			t.Fatalf("%s: timed out after %v waiting for the stream to end\n%s", l.label, d, l.owner.dump())
		}
	}
}

// remaining returns the unconsumed lines (no waiting).
func (l *lineLog) remaining() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines[l.cursor:])
}

func (l *lineLog) render() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	lines := l.lines
	const head, tailN = 60, 200
	for i, s := range lines {
		if len(lines) > head+tailN && i == head {
			fmt.Fprintf(&b, "    ... %d lines left out ...\n", len(lines)-head-tailN)
		}
		if len(lines) > head+tailN && i >= head && i < len(lines)-tailN {
			continue
		}
		mark := " "
		if i == l.cursor {
			mark = ">"
		}
		fmt.Fprintf(&b, "  %s%4d %s\n", mark, i+1, quote(s))
	}
	if l.tail != "" {
		fmt.Fprintf(&b, "    (unterminated) %s\n", quote(l.tail))
	}
	if !l.eof {
		b.WriteString("    (stream still open)\n")
	}
	return b.String()
}

// quote renders s with Go escapes, shortening very long strings.
func quote(s string) string {
	const max = 240
	if len(s) > max {
		return strconv.Quote(s[:max]) + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// ---------------------------------------------------------------------------
// proc: a child process with piped stdin and captured stdout / stderr.
// ---------------------------------------------------------------------------

type proc struct {
	label string
	cmd   *exec.Cmd
	dir   string

	stdinMu sync.Mutex
	stdin   *os.File // write end, nil once closed

	out  *lineLog
	errs *lineLog

	readers sync.WaitGroup
	done    chan struct{} // closed once the process has been reaped
	state   *os.ProcessState
}

// startProc starts bin with args in dir. stdin is a pipe (write to it with
// send / write, close it with closeStdin); stdout and stderr are captured.
// The test's cleanup kills the process if it still runs, waits for it and
// for the reader goroutines, and prints everything captured if the test
// failed. A process that panicked or reported a data race fails the test.
func startProc(t testing.TB, label, bin, dir string, args []string) *proc {
	t.Helper()
	return startProcStdin(t, label, bin, dir, args, nil)
}

// startProcStdin is startProc with the given file as stdin (nil: a pipe).
// The caller keeps ownership of a given stdin file.
func startProcStdin(t testing.TB, label, bin, dir string, args []string, stdin *os.File) *proc {
	t.Helper()
	var inR, inW *os.File
	if stdin != nil {
		inR = stdin
	} else {
		var err error
		inR, inW, err = os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	if err := cmd.Start(); err != nil {
		for _, f := range []*os.File{inW, outR, outW, errR, errW} {
			if f != nil {
				f.Close()
			}
		}
		if stdin == nil {
			inR.Close()
		}
		t.Fatalf("start %s %q: %v", bin, args, err)
	}
	if stdin == nil {
		inR.Close()
	}
	outW.Close()
	errW.Close()

	p := &proc{label: label, cmd: cmd, dir: dir, stdin: inW, done: make(chan struct{})}
	p.out = newLineLog(label+" stdout", p)
	p.errs = newLineLog(label+" stderr", p)
	p.readers.Add(2)
	go p.out.run(outR, &p.readers)
	go p.errs.run(errR, &p.readers)
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *proc) stop(t testing.TB) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: process %d could not be reaped", p.label, p.cmd.Process.Pid)
		return
	}
	p.closeStdin()
	p.readers.Wait()
	for _, s := range p.errs.remainingAll() {
		if strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") || strings.Contains(s, "WARNING: DATA RACE") {
			t.Errorf("%s reported on stderr: %s", p.label, quote(s))
			break
		}
	}
	if t.Failed() {
		t.Logf("captured output of %s:\n%s", p.label, p.dump())
	}
}

func (l *lineLog) remainingAll() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (p *proc) dump() string {
	status := "running"
	select {
	case <-p.done:
		status = p.state.String()
	default:
	}
	return fmt.Sprintf("=== %s (%s) args %q\n--- stdout:\n%s--- stderr:\n%s", p.label, status, p.cmd.Args[1:], p.out.render(), p.errs.render())
}

// write writes b to the process's stdin (with a deadline).
func (p *proc) write(t testing.TB, b []byte) {
	t.Helper()
	if err := p.tryWrite(b, timeout); err != nil {
		t.Fatalf("%s: writing %d bytes to stdin: %v\n%s", p.label, len(b), err, p.dump())
	}
}

func (p *proc) tryWrite(b []byte, d time.Duration) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		return errors.New("stdin already closed")
	}
	if err := p.stdin.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := p.stdin.Write(b)
	return err
}

// send writes line and a "\n" to stdin.
func (p *proc) send(t testing.TB, line string) {
	t.Helper()
	p.write(t, []byte(line+"\n"))
}

func (p *proc) closeStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits for the process to end and returns its exit code (-1 when
// it was killed by a signal).
func (p *proc) waitExit(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.state.ExitCode()
	case <-time.After(d):
		t.Fatalf("%s: still running after %v\n%s", p.label, d, p.dump())
		return 0
	}
}

// expectExit waits for the process to end with exit code want.
func (p *proc) expectExit(t testing.TB, want int, d time.Duration) {
	t.Helper()
	if got := p.waitExit(t, d); got != want {
		t.Fatalf("%s: exit code %d (%s), want %d\n%s", p.label, got, p.state, want, p.dump())
	}
}

// requireRunning fails the test if the process has ended.
func (p *proc) requireRunning(t testing.TB) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s: exited (%s) but should still be running\n%s", p.label, p.state, p.dump())
	}
}

// ---------------------------------------------------------------------------
// Servers.
// ---------------------------------------------------------------------------

type server struct {
	*proc
	port  int
	names atomic.Int64 // for fresh user names
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// freshName returns a user name not used before on this server.
func (s *server) freshName(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, s.names.Add(1))
}

// freePort returns a port that was free a moment ago on 127.0.0.1. It is
// drawn from 20000-32767, below Linux's ephemeral range, so that the
// listeners and outgoing connections of parallel tests (which get ephemeral
// ports) rarely collide with it; startServerWith checks that the listener
// on the port really is its server's.
func freePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + int(portRand.Add(7919)%12768)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port found")
	return 0
}

var portRand atomic.Uint64

func init() { portRand.Store(uint64(time.Now().UnixNano() % 12768)) }

// refusingPort returns a port on 127.0.0.1 where connections are refused:
// a socket is bound to it (so nobody else gets it) but does not listen.
func refusingPort(t testing.TB) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}

// listensOn reports whether process pid owns a TCP socket listening on
// port (any local address), from /proc. ok is false where /proc cannot tell.
func listensOn(pid, port int) (owned, ok bool) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		ok = true
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" {
				continue
			}
			i := strings.LastIndexByte(fields[1], ':')
			if p, err := strconv.ParseUint(fields[1][i+1:], 16, 16); err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
	}
	if !ok || len(inodes) == 0 {
		return false, ok
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, false
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && inodes[l] {
			return true, true
		}
	}
	return false, true
}

// startServer starts `server -a 127.0.0.1 -p PORT extra...` on a free port
// and waits until it accepts TCP connections.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	return startServerWith(t, func(port int) []string {
		return append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}, extra...)
	})
}

// startServerWith is startServer with the whole argument list made by
// argsFor. If the server exits before it listens (most likely because another
// process took the port in between), it is retried on another port a few
// times.
func startServerWith(t testing.TB, argsFor func(port int) []string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		p := startProc(t, fmt.Sprintf("server(:%d)", port), serverBin, t.TempDir(), argsFor(port))
		p.closeStdin() // the server never reads its stdin
		if waitListening(t, p, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), timeout) {
			return &server{proc: p, port: port}
		}
		if attempt < 5 {
			t.Logf("server attempt %d on port %d exited before listening; retrying:\n%s", attempt, port, p.dump())
			continue
		}
		t.Fatalf("server never listened:\n%s", p.dump())
	}
}

// waitListening waits until p listens on port (checked in /proc where
// possible, so that another test's listener on the same port is not taken
// for it) and a TCP connect to addr succeeds: true; or until p exits: false.
// It fails the test at the deadline.
func waitListening(t testing.TB, p *proc, addr string, d time.Duration) bool {
	t.Helper()
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		owned, ok := listensOn(p.cmd.Process.Pid, port)
		var err error
		if owned || !ok {
			var c net.Conn
			c, err = net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				if !p.exited() {
					return true
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not listening on %s after %v (owned: %v, dial: %v)\n%s", p.label, addr, d, owned, err, p.dump())
		}
		select {
		case <-p.done:
			return false
		case <-tick.C: // check again
		}
	}
}

// ---------------------------------------------------------------------------
// Clients.
// ---------------------------------------------------------------------------

type client struct {
	*proc
	name string
	base string // a fresh directory that holds only home
	home string // the client's working (download) directory
}

// newHome makes base/home and returns both.
func newHome(t testing.TB) (base, home string) {
	t.Helper()
	base = t.TempDir()
	home = filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	return base, home
}

// startClient starts `client -a 127.0.0.1 -p PORT -u name extra...` in a
// fresh working directory.
func startClient(t testing.TB, port int, name string, extra ...string) *client {
	t.Helper()
	base, home := newHome(t)
	return startClientIn(t, base, home, port, name, extra...)
}

func startClientIn(t testing.TB, base, home string, port int, name string, extra ...string) *client {
	t.Helper()
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-u", name}, extra...)
	p := startProc(t, "client "+strconv.Quote(name), clientBin, home, args)
	return &client{proc: p, name: name, base: base, home: home}
}

// joinClient starts a client for srv and waits for the server's join line.
func joinClient(t testing.TB, srv *server, name string, extra ...string) *client {
	t.Helper()
	c := startClient(t, srv.port, name, extra...)
	srv.out.waitLine(t, "join: "+name, timeout)
	return c
}

// quit types quit and expects `quitting` and exit status 0; the server (if
// given) must print `disconnected: NAME`.
func (c *client) quit(t testing.TB, srv *server) {
	t.Helper()
	c.send(t, "quit")
	if srv != nil {
		srv.out.waitLine(t, "disconnected: "+c.name, timeout)
	}
	c.out.waitLine(t, "quitting", timeout)
	c.expectExit(t, 0, timeout)
	c.out.expectEnd(t, timeout)
}

// expectHomeFiles requires the client's download directory to hold exactly
// the named files (and its base directory nothing but the home directory).
func (c *client) expectHomeFiles(t testing.TB, names ...string) {
	t.Helper()
	expectDirEntries(t, c.home, names...)
	expectDirEntries(t, c.base, "home")
}

func expectDirEntries(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := slices.Clone(names)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("directory %s holds %s, want exactly %s", dir, quoteAll(got), quoteAll(want))
	}
}

// assertServing checks that srv still serves: two fresh real clients join,
// one messages the other, and both quit. The server's stdout must have
// nothing unconsumed before the first join line.
func assertServing(t testing.TB, srv *server) {
	t.Helper()
	a, b := srv.freshName("okA"), srv.freshName("okB")
	ca := joinClient(t, srv, a)
	cb := joinClient(t, srv, b)
	ca.send(t, "msg 1 "+b+" still serving")
	srv.out.waitLine(t, "msg: "+a, timeout)
	cb.out.waitLine(t, "msg: "+a+": still serving", timeout)
	ca.quit(t, srv)
	cb.quit(t, srv)
	srv.requireRunning(t)
}

// ---------------------------------------------------------------------------
// One-shot runs (command-line checks).
// ---------------------------------------------------------------------------

type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// runOnce runs bin with args and stdin closed, and waits at most d for it.
func runOnce(t testing.TB, bin string, d time.Duration, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q still running after %v\nstdout: %s\nstderr: %s", filepath.Base(bin), args, d, quote(out.String()), quote(errb.String()))
	}
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode(), elapsed: time.Since(start)}
}

// ---------------------------------------------------------------------------
// Raw sockets speaking the framing of PROTOCOL.md section 2.
// ---------------------------------------------------------------------------

// fr encodes one frame: TYPE SP LENGTH SP PAYLOAD.
func fr(typ, payload string) []byte {
	return []byte(typ + " " + strconv.Itoa(len(payload)) + " " + payload)
}

type frame struct {
	typ     string
	payload []byte
}

func (f frame) String() string {
	return fmt.Sprintf("%s %d %s", f.typ, len(f.payload), quote(string(f.payload)))
}

type rawConn struct {
	label string
	c     *net.TCPConn
	r     *bufio.Reader
}

func wrapRaw(t testing.TB, label string, c *net.TCPConn) *rawConn {
	t.Cleanup(func() { c.Close() })
	_ = c.SetNoDelay(true)
	return &rawConn{label: label, c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// dialRaw opens a raw TCP connection to 127.0.0.1:port.
func dialRaw(t testing.TB, port int, label string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), timeout)
	if err != nil {
		t.Fatalf("raw %s: dial: %v", label, err)
	}
	return wrapRaw(t, label, c.(*net.TCPConn))
}

// rawJoin opens a raw connection, joins as name and waits for `join: name`.
func rawJoin(t testing.TB, srv *server, name string) *rawConn {
	t.Helper()
	rc := dialRaw(t, srv.port, name)
	rc.write(t, fr("join", name))
	srv.out.waitLine(t, "join: "+name, timeout)
	return rc
}

func (rc *rawConn) write(t testing.TB, b []byte) {
	t.Helper()
	if err := rc.tryWrite(b, timeout); err != nil {
		t.Fatalf("raw %s: write of %d bytes: %v", rc.label, len(b), err)
	}
}

func (rc *rawConn) tryWrite(b []byte, d time.Duration) error {
	if err := rc.c.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := rc.c.Write(b)
	return err
}

// writeBytewise writes b one byte per write call.
func (rc *rawConn) writeBytewise(t testing.TB, b []byte) {
	t.Helper()
	for i := range b {
		rc.write(t, b[i:i+1])
	}
}

var errBadFrame = errors.New("bad frame")

// readFrame reads one frame. It returns io.EOF only for a clean end of the
// stream at a frame boundary.
func (rc *rawConn) readFrame(d time.Duration) (frame, error) {
	if err := rc.c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return frame{}, err
	}
	typ, err := rc.token(64)
	if err != nil {
		return frame{}, err
	}
	if typ == "" || strings.Trim(typ, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return frame{}, fmt.Errorf("%w: type %q", errBadFrame, typ)
	}
	ls, err := rc.token(20)
	if err != nil {
		return frame{}, unexpected(err)
	}
	n, perr := strconv.ParseUint(ls, 10, 63)
	if perr != nil || ls != strconv.FormatUint(n, 10) {
		return frame{}, fmt.Errorf("%w: type %q, length %q", errBadFrame, typ, ls)
	}
	if n > 1<<31 {
		return frame{}, fmt.Errorf("%w: type %q, length %d too large for the test", errBadFrame, typ, n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(rc.r, payload); err != nil {
		return frame{}, fmt.Errorf("type %q length %d: payload: %w", typ, n, unexpected(err))
	}
	return frame{typ: typ, payload: payload}, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// token reads up to the next space (at most max bytes before it).
func (rc *rawConn) token(max int) (string, error) {
	var b []byte
	for {
		c, err := rc.r.ReadByte()
		if err != nil {
			if len(b) > 0 {
				return "", fmt.Errorf("after %q: %w", b, unexpected(err))
			}
			return "", err
		}
		if c == ' ' {
			return string(b), nil
		}
		b = append(b, c)
		if len(b) > max {
			return "", fmt.Errorf("%w: no space after %q", errBadFrame, b)
		}
	}
}

// expectFrame reads one frame and requires it to be exactly typ / payload.
func (rc *rawConn) expectFrame(t testing.TB, typ, payload string) {
	t.Helper()
	f, err := rc.readFrame(timeout)
	if err != nil {
		t.Fatalf("raw %s: want frame %s, got error: %v", rc.label, frame{typ, []byte(payload)}, err)
	}
	if f.typ != typ || string(f.payload) != payload {
		t.Fatalf("raw %s: want frame %s, got %s", rc.label, frame{typ, []byte(payload)}, f)
	}
}

// expectEOF requires a clean end of stream (no frame, no reset) within d.
func (rc *rawConn) expectEOF(t testing.TB, d time.Duration) {
	t.Helper()
	f, err := rc.readFrame(d)
	switch {
	case err == io.EOF:
		return
	case err == nil:
		t.Fatalf("raw %s: want the connection closed, got frame %s", rc.label, f)
	default:
		t.Fatalf("raw %s: want a clean close (EOF), got: %v", rc.label, err)
	}
}

// expectRefused requires the frame errType (empty payload) and then a clean
// close: the server's answer to a refused join or a broken frame.
func (rc *rawConn) expectRefused(t testing.TB, errType string) {
	t.Helper()
	rc.expectFrame(t, errType, "")
	rc.expectEOF(t, timeout)
}

// ---------------------------------------------------------------------------
// A fake server: a TCP listener in the test that a real client connects to.
// ---------------------------------------------------------------------------

type fakeServer struct {
	ln   *net.TCPListener
	port int
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fakeServer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
}

// accept waits for the next connection.
func (f *fakeServer) accept(t testing.TB) *rawConn {
	t.Helper()
	if err := f.ln.SetDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	c, err := f.ln.AcceptTCP()
	if err != nil {
		t.Fatalf("fake server: accept: %v", err)
	}
	return wrapRaw(t, "fake-server side", c)
}

// clientOnFake starts a real client named name against a fresh fake server,
// accepts its connection and checks that its first frame is exactly
// `join LEN name`.
func clientOnFake(t testing.TB, name string, extra ...string) (*client, *rawConn) {
	t.Helper()
	fs := newFakeServer(t)
	c := startClient(t, fs.port, name, extra...)
	rc := fs.accept(t)
	rc.expectFrame(t, "join", name)
	return c, rc
}

// expectDisconnectedExit1 checks the end of a client session that printed a
// `disconnected: ...` line while its stdin is a pipe: it must keep reading
// (and discarding) stdin, print nothing more, and exit 1 once stdin ends.
func (c *client) expectDisconnectedExit1(t testing.TB, line string) {
	t.Helper()
	c.out.waitLine(t, line, timeout)
	// Input after the end of the session is read and discarded: none of it
	// may print anything, and the writes must not fail (the client still
	// reads its stdin).
	c.write(t, []byte("list\nhelp\nmsg 1 "+c.name+" hello\nbogus input\n"))
	c.requireRunning(t)
	c.closeStdin()
	c.expectExit(t, 1, timeout)
	c.out.expectEnd(t, timeout)
}

func itoa(n int) string { return strconv.Itoa(n) }
