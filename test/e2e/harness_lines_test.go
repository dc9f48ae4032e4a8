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

// await runs check with l.mu held, now and after every change to the
// log, until it reports done. It fails the test with the line check
// returns as bad, or, naming what the caller waits for, when d passes or
// the stream ends before check is done.
func (l *lineLog) await(t testing.TB, d time.Duration, what string, check func() (done bool, bad string)) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		done, bad := check()
		eof, ch := l.eof, l.notify
		l.mu.Unlock()
		switch {
		case bad != "":
			t.Fatalf("%s: %s\n%s", l.label, bad, l.owner.dump())
		case done:
			return
		case eof:
			t.Fatalf("%s: want %s, but the stream ended\n%s", l.label, what, l.owner.dump())
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("%s: timed out after %v waiting for %s\n%s", l.label, d, what, l.owner.dump())
		}
	}
}

// waitLine waits until the next unconsumed line arrives and requires it to be
// exactly want.
func (l *lineLog) waitLine(t testing.TB, want string, d time.Duration) {
	t.Helper()
	l.await(t, d, "line "+quote(want), func() (bool, string) {
		if l.cursor == len(l.lines) {
			return false, ""
		}
		if got := l.lines[l.cursor]; got != want {
			return false, fmt.Sprintf("line %d: want %s, got %s", l.cursor+1, quote(want), quote(got))
		}
		l.cursor++
		return true, ""
	})
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
	var got string
	l.await(t, d, "another line", func() (bool, string) {
		if l.cursor == len(l.lines) {
			return false, ""
		}
		got = l.lines[l.cursor]
		l.cursor++
		return true, ""
	})
	return got
}

// skipTo searches from the cursor for want, and returns the lines skipped.
func (l *lineLog) skipTo(t testing.TB, want string, d time.Duration) []string {
	t.Helper()
	var skipped []string
	l.await(t, d, "line "+quote(want), func() (bool, string) {
		for l.cursor < len(l.lines) {
			got := l.lines[l.cursor]
			l.cursor++
			if got == want {
				return true, ""
			}
			skipped = append(skipped, got)
		}
		return false, ""
	})
	return skipped
}

// waitAny waits until some line seen so far, consumed or not, satisfies
// match, and returns the first such line. It does not move the cursor; what
// names the wanted line in a failure.
func (l *lineLog) waitAny(t testing.TB, d time.Duration, what string, match func(string) bool) string {
	t.Helper()
	var got string
	l.await(t, d, what, func() (bool, string) {
		i := slices.IndexFunc(l.lines, match)
		if i >= 0 {
			got = l.lines[i]
		}
		return i >= 0, ""
	})
	return got
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
	l.await(t, d, fmt.Sprintf("at least %d lines (%s)", n, why), func() (bool, string) {
		return len(l.lines) >= n, ""
	})
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
	l.await(t, d, "the stream to end", func() (bool, string) {
		if !l.eof {
			return false, ""
		}
		if extra := l.lines[l.cursor:]; len(extra) > 0 || l.tail != "" {
			return false, fmt.Sprintf("unexpected output at the end: lines %s, unterminated tail %s", quoteAll(extra), quote(l.tail))
		}
		return true, ""
	})
}

// waitClosed waits until the stream has ended (the process closed it).
func (l *lineLog) waitClosed(t testing.TB, d time.Duration) {
	t.Helper()
	l.await(t, d, "the stream to end", func() (bool, string) { return l.eof, "" })
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
