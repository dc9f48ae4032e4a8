package ptytest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal/termtest"
	"github.com/gochat/chat/internal/testbin"
)

// timeout is the deadline of every wait: generous, for CI's loaded 2-core
// machine running the tests with -race.
const timeout = 15 * time.Second

// The screen of every client run in a pseudo-terminal.
const rows, cols = 40, 100

var serverBin, clientBin string

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Suite{
		Name:     "pty",
		Programs: []testbin.Program{{Path: &serverBin, Pkg: "./cmd/gochatd"}, {Path: &clientBin, Pkg: "./cmd/gochat"}},
	})
}

// skipShort skips the test under -short: the suite runs the real programs.
// Every way of starting a program calls it.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short: the pty suite runs the real programs")
	}
}

// env returns the environment for a client: this one's, with TERM set and
// NO_COLOR as given (unset if empty).
func env(term, noColor string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TERM=") && !strings.HasPrefix(kv, "NO_COLOR=") {
			out = append(out, kv)
		}
	}
	out = append(out, "TERM="+term)
	if noColor != "" {
		out = append(out, "NO_COLOR="+noColor)
	}
	return out
}

// kill kills cmd unless it has exited (closed exited), and waits until
// it has.
func kill(cmd *exec.Cmd, exited <-chan struct{}) {
	select {
	case <-exited:
	default:
		cmd.Process.Kill()
		<-exited
	}
}

// withStateDir returns environ with XDG_STATE_HOME set to a fresh folder
// of the test, unless environ sets it: the history a client on a terminal
// keeps never lands in the real one.
func withStateDir(environ []string, t *testing.T) []string {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			return environ
		}
	}
	return append(slices.Clip(environ), "XDG_STATE_HOME="+t.TempDir())
}

// ---------------------------------------------------------------------------
// stream: an output stream of a child process, as bytes.
// ---------------------------------------------------------------------------

// stream collects what a process writes to a pipe.
type stream struct {
	mu      sync.Mutex
	b       []byte
	eof     bool
	changed chan struct{}
}

func newStream() *stream { return &stream{changed: make(chan struct{})} }

// run copies r into s until r ends; it is the only writer of s.
func (s *stream) run(r io.ReadCloser, wg *sync.WaitGroup) {
	defer wg.Done()
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		s.mu.Lock()
		s.b = append(s.b, buf[:n]...)
		s.eof = err != nil
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (s *stream) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b...)
}

// waitFor waits until the stream's bytes contain want.
func (s *stream) waitFor(t testing.TB, what, want string) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok, eof, ch := bytes.Contains(s.b, []byte(want)), s.eof, s.changed
		got := string(s.b)
		s.mu.Unlock()
		if ok {
			return
		}
		if eof {
			t.Fatalf("%s: stream ended without %q; got:\n%s", what, want, got)
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("%s: timed out after %v waiting for %q; got:\n%s", what, timeout, want, got)
		}
	}
}

// trouble returns the first line of a program's output that reports a data
// race (the programs are built with -race when the tests are) or a panic,
// or "" if there is none.
func trouble(out []byte) string {
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.Contains(line, "WARNING: DATA RACE") || strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			return line
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// The real server.
// ---------------------------------------------------------------------------

type server struct {
	*testbin.Proc
	addr string
	port string
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs the real server on a free port of 127.0.0.1.
func startServer(t *testing.T) *server {
	t.Helper()
	return startServerArgs(t)
}

// startServerArgs is startServer with more arguments.
func startServerArgs(t *testing.T, extra ...string) *server {
	t.Helper()
	skipShort(t)
	cmd := exec.Command(serverBin, append([]string{"-a", "127.0.0.1", "-p", "0"}, extra...)...)
	cmd.Dir = t.TempDir()
	s := &server{Proc: testbin.Start(t, "server", cmd)}
	s.addr = s.Errs.WaitMatch(t, listening, timeout)[1]
	_, s.port, _ = net.SplitHostPort(s.addr)
	return s
}

// ---------------------------------------------------------------------------
// A client in a pseudo-terminal.
// ---------------------------------------------------------------------------

type ptyClient struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptmx *os.File
	tty  *os.File // kept open to check its mode after the client exits
	scr  *termtest.Screen
	dir  string // the working (download) directory

	exited   chan struct{}
	readDone chan struct{}
}

// startPTY runs the client with args in a pseudo-terminal of rows by cols
// that is its stdin, stdout and stderr, in a fresh directory.
func startPTY(t *testing.T, environ []string, args ...string) *ptyClient {
	t.Helper()
	skipShort(t)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	c := &ptyClient{
		t: t, ptmx: ptmx, tty: tty, scr: termtest.New(rows, cols), dir: t.TempDir(),
		exited: make(chan struct{}), readDone: make(chan struct{}),
	}
	c.cmd = exec.Command(clientBin, args...)
	c.cmd.Dir, c.cmd.Env = c.dir, withStateDir(environ, t)
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = tty, tty, tty
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := c.cmd.Start(); err != nil {
		ptmx.Close()
		tty.Close()
		t.Fatal(err)
	}
	go func() {
		defer close(c.readDone)
		io.Copy(c.scr, ptmx) // ends with EIO once every tty descriptor is closed
	}()
	go func() {
		defer close(c.exited)
		c.cmd.Wait()
	}()
	t.Cleanup(func() {
		kill(c.cmd, c.exited)
		c.tty.Close()
		<-c.readDone
		c.ptmx.Close()
		if l := trouble(c.scr.Raw()); l != "" {
			t.Errorf("client reported on its terminal: %q", l)
		}
		if t.Failed() {
			t.Logf("client screen at the end:\n%s", c.scr)
		}
	})
	return c
}

// typeKeys writes keys to the terminal, as if typed.
func (c *ptyClient) typeKeys(keys string) {
	c.t.Helper()
	if _, err := c.ptmx.Write([]byte(keys)); err != nil {
		c.t.Fatalf("typing %q: %v", keys, err)
	}
}

// waitScreen waits until cond holds for the client's screen.
func (c *ptyClient) waitScreen(what string, cond func(v termtest.View) bool) termtest.View {
	c.t.Helper()
	return c.scr.Await(c.t, timeout, what, cond)
}

// waitInput waits until the cursor's row is the prompt and input, with the
// cursor at its end.
func (c *ptyClient) waitInput(user, input string) termtest.View {
	c.t.Helper()
	row := user + "> " + input
	return c.waitScreen(fmt.Sprintf("input row %q", row), func(v termtest.View) bool {
		return v.CursorRow == strings.TrimRight(row, " ") && v.Col == len([]rune(row))
	})
}

// waitRow waits until some row of the screen's transcript is line.
func (c *ptyClient) waitRow(line string) termtest.View {
	c.t.Helper()
	return c.waitScreen(fmt.Sprintf("row %q", line), func(v termtest.View) bool { return v.Contains(line) })
}

// waitExit waits for the client to exit and returns its status.
func (c *ptyClient) waitExit() int {
	c.t.Helper()
	return waitExited(c.t, c.cmd, c.exited, func() string { return fmt.Sprintf("; screen:\n%s", c.scr) })
}

// waitExited waits until exited is closed and returns cmd's exit status;
// a client still running after timeout fails t, the failure ending with
// more().
func waitExited(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}, more func() string) int {
	t.Helper()
	select {
	case <-exited:
		return cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("client still running after %v%s", timeout, more())
		return -1
	}
}

// expectExit waits for c to exit and requires the status want.
func expectExit(t *testing.T, c interface{ waitExit() int }, want int) {
	t.Helper()
	if code := c.waitExit(); code != want {
		t.Fatalf("exit status %d, want %d", code, want)
	}
}

// expectLeft requires alice's disconnect on conn, the fake server's
// connection, closes it, and requires her client to exit with status 0.
func expectLeft(t *testing.T, c interface{ waitExit() int }, conn *chattest.Conn) {
	t.Helper()
	conn.Expect(protocol.Disconnect, "alice")
	conn.NC.Close()
	expectExit(t, c, 0)
}

// expectTerminalRestored checks that the terminal is back in its usual
// cooked mode: echo, line editing and signal keys on.
func (c *ptyClient) expectTerminalRestored() {
	c.t.Helper()
	tio, err := unix.IoctlGetTermios(int(c.tty.Fd()), unix.TCGETS)
	if err != nil {
		c.t.Fatal(err)
	}
	if want := uint32(unix.ECHO | unix.ICANON | unix.ISIG); tio.Lflag&want != want {
		c.t.Fatalf("terminal left in raw mode: lflag %#o", tio.Lflag)
	}
	if tio.Oflag&unix.OPOST == 0 {
		c.t.Fatal("terminal left without output processing")
	}
}

// ---------------------------------------------------------------------------
// A client on pipes.
// ---------------------------------------------------------------------------

type pipeClient struct {
	t        *testing.T
	cmd      *exec.Cmd
	stdin    io.WriteCloser // nil when stdin is a terminal
	ptmx     *os.File       // the terminal's master side, when stdin is one
	out, err *stream
	dir      string
	exited   chan struct{}
}

// startPipe runs the client with stdout and stderr on pipes, and stdin on
// a pipe, or on a pseudo-terminal if stdinTTY.
func startPipe(t *testing.T, environ []string, stdinTTY bool, args ...string) *pipeClient {
	t.Helper()
	skipShort(t)
	c := &pipeClient{t: t, out: newStream(), err: newStream(), dir: t.TempDir(), exited: make(chan struct{})}
	c.cmd = exec.Command(clientBin, args...)
	c.cmd.Dir, c.cmd.Env = c.dir, environ
	var tty *os.File
	if stdinTTY {
		ptmx, t2, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		c.ptmx, tty = ptmx, t2
		c.cmd.Stdin = tty
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	} else {
		in, err := c.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.stdin = in
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var echo sync.WaitGroup
	if tty != nil {
		tty.Close()
		// What the terminal echoes is not the client's output; read it
		// so that the terminal never blocks.
		echo.Add(1)
		go func() {
			defer echo.Done()
			io.Copy(io.Discard, c.ptmx)
		}()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go c.out.run(stdout, &wg)
	go c.err.run(stderr, &wg)
	go func() {
		defer close(c.exited)
		wg.Wait() // the pipes are drained before Wait closes them
		c.cmd.Wait()
	}()
	t.Cleanup(func() {
		kill(c.cmd, c.exited)
		if c.ptmx != nil {
			c.ptmx.Close()
			echo.Wait()
		}
		if l := trouble(c.err.bytes()); l != "" {
			t.Errorf("client reported on stderr: %q", l)
		}
		if t.Failed() {
			t.Logf("client stdout:\n%s\nstderr:\n%s", c.out.bytes(), c.err.bytes())
		}
	})
	return c
}

// send writes a line of input.
func (c *pipeClient) send(line string) {
	c.t.Helper()
	var err error
	if c.stdin != nil {
		_, err = io.WriteString(c.stdin, line+"\n")
	} else {
		_, err = io.WriteString(c.ptmx, line+"\n")
	}
	if err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// waitExit waits for the client to exit and returns its status.
func (c *pipeClient) waitExit() int {
	c.t.Helper()
	return waitExited(c.t, c.cmd, c.exited, func() string { return "" })
}

// ---------------------------------------------------------------------------
// Raw protocol connections (PROTOCOL.md section 2), through the shared
// test client internal/chattest (issue 24 item 1).
// ---------------------------------------------------------------------------

// frame encodes TYPE SP LENGTH SP PAYLOAD, by hand: what the suite sends
// does not depend on internal/protocol's encoders.
func frame(typ, payload string) []byte {
	return []byte(typ + " " + strconv.Itoa(len(payload)) + " " + payload)
}

// newRaw makes c a chattest.Conn with the suite's timeout.
func newRaw(t *testing.T, c net.Conn) *chattest.Conn {
	rc := chattest.New(t, "", c)
	rc.Timeout = timeout
	return rc
}

// dialJoin connects to srv and joins as name.
func dialJoin(t *testing.T, srv *server, name string) *chattest.Conn {
	t.Helper()
	rc := chattest.Dial(t, srv.addr, name)
	rc.Timeout = timeout
	rc.Write(frame("join", name))
	srv.Out.WaitLine(t, "join: "+name, timeout)
	return rc
}

// ---------------------------------------------------------------------------
// A fake server: one connection, driven by the test.
// ---------------------------------------------------------------------------

type fakeServer struct {
	ln    net.Listener
	port  string
	conns chan net.Conn
}

// newFakeServer listens on 127.0.0.1 and hands the test each connection.
func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln, conns: make(chan net.Conn, 4)}
	_, f.port, _ = net.SplitHostPort(ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// A small receive buffer, so that a client sending a big file
			// soon waits for the test to read.
			c.(*net.TCPConn).SetReadBuffer(64 << 10)
			f.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(f.conns)
		for c := range f.conns {
			c.Close()
		}
	})
	return f
}

// accept waits for the client and its join frame.
func (f *fakeServer) accept(t *testing.T, name string) *chattest.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		rc := newRaw(t, c)
		rc.Expect(protocol.Join, name)
		return rc
	case <-time.After(timeout):
		t.Fatalf("no connection after %v", timeout)
		return nil
	}
}
