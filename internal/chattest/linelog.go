package chattest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// LineLog is an io.Writer (a server's Stdout, a slog handler's output)
// that keeps the lines written to it and lets a test wait for one. A line
// is what comes before a "\n"; bytes after the last one wait for the rest.
// The zero LineLog is empty and ready to use.
type LineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // made by a waiter, closed (and dropped) by the next write
}

// NewLineLog returns an empty LineLog.
func NewLineLog() *LineLog { return new(LineLog) }

// Write keeps p's complete lines. It never fails.
func (l *LineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return len(p), nil
}

// Lines returns the lines so far.
func (l *LineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Count returns how many lines equal want.
func (l *LineLog) Count(want string) int {
	return l.CountFunc(func(s string) bool { return s == want })
}

// CountFunc returns how many lines match.
func (l *LineLog) CountFunc(match func(string) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if match(s) {
			n++
		}
	}
	return n
}

// Wait blocks until the line want has been written n times, or fails the
// test after Timeout.
func (l *LineLog) Wait(t testing.TB, want string, n int) {
	t.Helper()
	what := fmt.Sprintf("%q", want)
	if n != 1 {
		what += fmt.Sprintf(" (x%d)", n)
	}
	l.WaitFunc(t, what, n, func(s string) bool { return s == want })
}

// WaitFunc blocks until n lines for which match is true have been written,
// or fails the test after Timeout; what names them in the failure.
func (l *LineLog) WaitFunc(t testing.TB, what string, n int, match func(string) bool) {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		if l.CountFunc(match) >= n {
			return
		}
		l.mu.Lock()
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		if l.CountFunc(match) >= n { // written between the count and the channel
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no line %s after %v; lines so far:\n%s", what, Timeout, strings.Join(l.Lines(), "\n"))
		}
	}
}

// WaitUntil polls cond until it holds, or fails the test after Timeout;
// what names the condition in the failure. It is for state that has no
// event to wait on (a counter, a goroutine's stack); anything that writes
// a line or a frame is waited on through a LineLog or a Conn instead.
func WaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, what, cond, Timeout)
}

func waitUntil(t testing.TB, what string, cond func() bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never after %v: %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
