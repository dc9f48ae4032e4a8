package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

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
	return startProcFiles(t, label, bin, dir, args, stdin, nil)
}

// startProcFiles is startProc with the given files as stdin and stdout
// (nil: a pipe, and stdout captured). The caller keeps ownership of a given
// file. With a stdout file given, p.out is an empty log that has ended.
func startProcFiles(t testing.TB, label, bin, dir string, args []string, stdin, stdout *os.File) *proc {
	t.Helper()
	return startProcEnv(t, label, bin, dir, args, stdin, stdout, nil)
}

// startProcEnv is startProcFiles with the environment env (nil: this
// process's).
func startProcEnv(t testing.TB, label, bin, dir string, args []string, stdin, stdout *os.File, env []string) *proc {
	t.Helper()
	return startProcExtra(t, label, bin, dir, args, stdin, stdout, env, nil)
}

// startProcExtra is startProcEnv with extra open files for the process,
// at descriptors 3, 4, ... (exec.Cmd.ExtraFiles); the caller keeps them.
func startProcExtra(t testing.TB, label, bin, dir string, args []string, stdin, stdout *os.File, env []string, extra []*os.File) *proc {
	t.Helper()
	skipShort(t)
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
	outR, outW := (*os.File)(nil), stdout
	if stdout == nil {
		var err error
		outR, outW, err = os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env, cmd.ExtraFiles = dir, env, extra
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	if err := cmd.Start(); err != nil {
		for _, f := range []*os.File{inW, outR, errR, errW} {
			if f != nil {
				f.Close()
			}
		}
		if stdin == nil {
			inR.Close()
		}
		if stdout == nil {
			outW.Close()
		}
		t.Fatalf("start %s %q: %v", bin, args, err)
	}
	if stdin == nil {
		inR.Close()
	}
	if stdout == nil {
		outW.Close()
	}
	errW.Close()

	p := &proc{label: label, cmd: cmd, dir: dir, stdin: inW, done: make(chan struct{})}
	p.out = newLineLog(label+" stdout", p)
	p.errs = newLineLog(label+" stderr", p)
	if outR != nil {
		p.readers.Add(1)
		go p.out.run(outR, &p.readers)
	} else {
		p.out.eof = true // not captured
	}
	p.readers.Add(1)
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
