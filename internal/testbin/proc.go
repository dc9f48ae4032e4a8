package testbin

import (
	"bufio"
	"fmt"
	"io"
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
)

// Lines collects the lines of one output stream of a process, for a test
// to look at and to wait on. A line is what comes before a "\n", which is
// cut off (a "\r" stays); bytes after the last "\n" count as a line when
// the stream ends.
type Lines struct {
	mu      sync.Mutex
	all     []string      // guarded by mu
	ended   bool          // the stream has ended; guarded by mu
	changed chan struct{} // closed and replaced on every line and at the end; guarded by mu
}

func newLines() *Lines { return &Lines{changed: make(chan struct{})} }

// run reads r until it ends; it is the only writer of l.
func (l *Lines) run(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		s, err := br.ReadString('\n')
		l.mu.Lock()
		if err == nil {
			l.all = append(l.all, s[:len(s)-1])
		} else {
			if s != "" {
				l.all = append(l.all, s)
			}
			l.ended = true
		}
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Snapshot returns the lines so far.
func (l *Lines) Snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// Count returns how many of the lines so far match.
func (l *Lines) Count(match func(string) bool) int {
	n := 0
	for _, s := range l.Snapshot() {
		if match(s) {
			n++
		}
	}
	return n
}

// Wait waits until n lines match, failing t when d passes or the stream
// ends first; what names the lines in the failure.
func (l *Lines) Wait(t testing.TB, what string, n int, d time.Duration, match func(string) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ch, ended := l.changed, l.ended
		l.mu.Unlock()
		if l.Count(match) >= n {
			return
		}
		if ended {
			t.Fatalf("the stream ended before %s (x%d); lines:\n%s", what, n, strings.Join(l.Snapshot(), "\n"))
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s (x%d); lines:\n%s", d, what, n, strings.Join(l.Snapshot(), "\n"))
		}
	}
}

// WaitLine waits for a line equal to want.
func (l *Lines) WaitLine(t testing.TB, want string, d time.Duration) {
	t.Helper()
	l.Wait(t, strconv.Quote(want), 1, d, func(s string) bool { return s == want })
}

// WaitMatch waits for a line that re matches and returns the submatches
// of the first such line.
func (l *Lines) WaitMatch(t testing.TB, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	l.Wait(t, "a line matching "+strconv.Quote(re.String()), 1, d, re.MatchString)
	for _, s := range l.Snapshot() {
		if m := re.FindStringSubmatch(s); m != nil {
			return m
		}
	}
	panic("unreachable: a line matched")
}

// Proc is a program under test, started by Start, with its stdin a pipe
// and its stdout and stderr collected line by line.
type Proc struct {
	Label string
	Cmd   *exec.Cmd
	Out   *Lines
	Errs  *Lines

	stdin io.WriteCloser
	done  chan struct{} // closed when the process has been reaped and its output read
}

// stopGrace is how long the cleanup of a test gives a program that still
// runs to end on SIGTERM before it kills it.
const stopGrace = 10 * time.Second

// Start starts cmd, whose Stdin, Stdout and Stderr must be unset. When
// the test ends, a program that still runs gets SIGTERM (SIGKILL after
// a while), so that its way out runs under the race detector too; then a
// data race, panic or fatal error it reported on stderr fails the test,
// and a failed test logs everything the program printed.
func Start(t testing.TB, label string, cmd *exec.Cmd) *Proc {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", label, err)
	}
	p := &Proc{Label: label, Cmd: cmd, Out: newLines(), Errs: newLines(), stdin: stdin, done: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Go(func() { p.Out.run(stdout) })
	readers.Go(func() { p.Errs.run(stderr) })
	go func() {
		readers.Wait() // Wait closes the pipes: read them to their end first
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		p.end(syscall.SIGTERM, stopGrace)
		for _, s := range p.Errs.Snapshot() {
			if strings.Contains(s, "WARNING: DATA RACE") || strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") {
				t.Errorf("%s reported: %s", label, s)
				break
			}
		}
		if t.Failed() {
			t.Logf("%s %q stdout:\n%s\n%s stderr:\n%s", label, cmd.Args[1:], strings.Join(p.Out.Snapshot(), "\n"), label, strings.Join(p.Errs.Snapshot(), "\n"))
		}
	})
	return p
}

// end sends sig to the program unless it has ended, and kills it if it has
// not ended within d; it returns once the program has been reaped.
func (p *Proc) end(sig os.Signal, d time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(d):
		p.Cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the program with SIGKILL, as a crash does, and reaps it.
func (p *Proc) Kill() { p.end(syscall.SIGKILL, time.Minute) }

// Stop ends the program with SIGTERM and returns its exit status; a
// program that does not end within d fails t (and is killed).
func (p *Proc) Stop(t testing.TB, d time.Duration) int {
	t.Helper()
	p.Cmd.Process.Signal(syscall.SIGTERM)
	return p.WaitExit(t, d)
}

// WaitExit waits for the program to end and returns its exit status (-1
// when a signal ended it); one that still runs after d fails t and is
// killed.
func (p *Proc) WaitExit(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.Kill()
		t.Fatalf("%s still running after %v", p.Label, d)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Send writes line and a newline to the program's stdin.
func (p *Proc) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("%s: writing to stdin: %v", p.Label, err)
	}
}

// RSSKiB returns the program's resident memory in KiB.
func (p *Proc) RSSKiB(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("VmRSS: %v", err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}
