package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The processes the tool starts: servers, which it ends with SIGTERM, and
// its workers and clients, which it talks to line by line.

// orSelf returns bin and args, or, when bin is "", this tool's own
// executable with the hidden command first: the role it re-executes
// itself in.
func orSelf(bin, command string, args []string) (string, []string, error) {
	if bin != "" {
		return bin, args, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	return self, append([]string{command}, args...), nil
}

// startTerminable starts cmd and returns a channel closed once it has
// exited, and the function that ends it: SIGTERM, then, if it is still
// there after wait, a kill; stop returns once it has exited.
func startTerminable(cmd *exec.Cmd, wait time.Duration) (exited chan struct{}, stop func(), err error) {
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited = make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(wait):
			cmd.Process.Kill()
			<-exited
		}
	}
	return exited, stop, nil
}

// childProc is a worker or a client process that the tool talks to line
// by line.
type childProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser // its stdin
	lines chan string    // its stdout, line by line; closed at its end
}

// startChild starts bin with args, its stderr going to stderr, with room
// for buffered lines of its stdout not yet read.
func startChild(bin string, args []string, stderr io.Writer, buffered int) (*childProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &childProc{cmd: cmd, in: in, lines: make(chan string, buffered)}
	go func() { // ends with its stdout
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20) // a worker's histogram line
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p, nil
}

// send writes a line to the process.
func (p *childProc) send(line string) error {
	_, err := io.WriteString(p.in, line+"\n")
	return err
}

// expect waits for the process's next line, which must start with word,
// and returns the fields after it (the last one the rest of the line).
func (p *childProc) expect(word string, timeout time.Duration) ([]string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return nil, errors.New("worker exited")
		}
		f := strings.SplitN(line, " ", 3)
		if f[0] != word {
			return nil, fmt.Errorf("worker said %q, want %s", line, word)
		}
		return f[1:], nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("worker said nothing for %v", timeout)
	}
}

// stop ends the process with quit and the end of its input (or, after
// wait, a kill) and waits for it, its stdout read to the end.
func (p *childProc) stop(wait time.Duration) {
	p.send("quit")
	p.in.Close()
	timer := time.AfterFunc(wait, func() { p.cmd.Process.Kill() })
	defer timer.Stop()
	for range p.lines {
	}
	p.cmd.Wait()
}

// stopAll stops procs at once (each may take a while to end: a worker
// closing thousands of connections) and waits for them all.
func stopAll(procs []*childProc, wait time.Duration) {
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(wait) })
	}
	wg.Wait()
}
