package e2e

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

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

// wait blocks until ch is closed (the log changed: true) or deadline fires
// (false). The caller takes ch from l.notify under l.mu and releases l.mu
// before calling wait.
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

// waitAny waits until some line seen so far, consumed or not, satisfies
// match, and returns the first such line. It does not move the cursor; what
// names the wanted line in a failure.
func (l *lineLog) waitAny(t testing.TB, d time.Duration, what string, match func(string) bool) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		for _, s := range l.lines {
			if match(s) {
				l.mu.Unlock()
				return s
			}
		}
		eof, ch := l.eof, l.notify
		l.mu.Unlock()
		if eof {
			t.Fatalf("%s: the stream ended without %s\n%s", l.label, what, l.owner.dump())
		}
		if !l.wait(ch, timer.C) {
			t.Fatalf("%s: timed out after %v waiting for %s\n%s", l.label, d, what, l.owner.dump())
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

// remainingAll returns every line so far, consumed or not (no waiting).
func (l *lineLog) remainingAll() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
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
