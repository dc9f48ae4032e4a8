package cluster

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock whose time moves only by Advance, which runs the
// functions due.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Advance moves the time on by d, running each function that falls due,
// in order, at its time.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		next.stopped = true
		c.now = next.at
		c.mu.Unlock()
		next.f()
	}
}

// newRepeatTest returns a logger through a repeatHandler on a fake clock
// (period 10 s), the clock, the handler's state, and a function that
// returns the lines logged since its last call.
func newRepeatTest() (*slog.Logger, *fakeClock, *repeatState, func() []string) {
	var logs logBuffer
	inner := slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	c := &fakeClock{now: time.Unix(1e9, 0)}
	h := newRepeatHandler(inner, c, 10*time.Second)
	seen := 0
	lines := func() []string {
		all := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n")
		if len(all) == 1 && all[0] == "" {
			all = nil
		}
		out := all[seen:]
		seen = len(all)
		return out
	}
	return slog.New(h), c, h.s, lines
}

func routeError(attempt, port int) string {
	return fmt.Sprintf("Error trying to connect to route (attempt %d): dial tcp 127.0.0.1:%d: connect: connection refused", attempt, port)
}

func expectLines(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: logged %q, want %d lines like %q", step, got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Fatalf("%s: line %d is %q, want it to contain %q", step, i, got[i], want[i])
		}
	}
}

// TestRepeatHandler follows a kind of record through the handler: the
// first at once, the rest of a period summed up at its end, a quiet period
// ending the run (issue 23 item 17).
func TestRepeatHandler(t *testing.T) {
	log, c, _, lines := newRepeatTest()
	engine := log.With("engine", "nats-server")

	engine.Warn(routeError(1, 16002))
	expectLines(t, "first", lines(), `msg="Error trying to connect to route (attempt 1)`)

	// Every route connection of the pool, every second: 4 a second.
	for i := 2; i <= 37; i++ {
		c.Advance(250 * time.Millisecond)
		engine.Warn(routeError(i, 16002))
	}
	expectLines(t, "repeats within the period", lines())

	// Another peer's errors are another kind; so is another level.
	engine.Warn(routeError(1, 16003))
	engine.Info(routeError(38, 16002))
	expectLines(t, "other kinds", lines(), "127.0.0.1:16003", "level=INFO")

	c.Advance(10*time.Second - 36*250*time.Millisecond)
	expectLines(t, "the period's end", lines(),
		`(attempt 37): dial tcp 127.0.0.1:16002: connect: connection refused" engine=nats-server repeated=36 in_last=10s`)

	// Still repeating: one record per period.
	for i := 39; i <= 78; i++ {
		c.Advance(250 * time.Millisecond)
		engine.Warn(routeError(i, 16002))
	}
	// The period ended (at 20 s) before the 78th came (at 20 s too).
	expectLines(t, "the second period", lines(), "(attempt 77): dial tcp 127.0.0.1:16002: connect: connection refused\" engine=nats-server repeated=39 in_last=10s")

	// A period without one ends the run; the next is logged at once.
	c.Advance(20 * time.Second)
	expectLines(t, "quiet", lines(), "(attempt 78): dial tcp 127.0.0.1:16002: connect: connection refused\" engine=nats-server repeated=1 in_last=10s")
	engine.Warn(routeError(79, 16002))
	expectLines(t, "after a quiet period", lines(), "(attempt 79)")
}

// TestRepeatHandlerClose checks that close logs what is held at once and
// lets later records through.
func TestRepeatHandlerClose(t *testing.T) {
	log, c, s, lines := newRepeatTest()
	for range 5 {
		log.Info("removing records that no live session holds", "records", 3)
		c.Advance(time.Second)
	}
	expectLines(t, "held", lines(), "records=3")
	s.close()
	expectLines(t, "close", lines(), "records=3 repeated=4 in_last=5s")
	log.Info("removing records that no live session holds", "records", 1)
	log.Info("removing records that no live session holds", "records", 2)
	expectLines(t, "after close", lines(), "records=1", "records=2")
	c.Advance(time.Minute)
	expectLines(t, "no timer after close", lines())
}

func TestRecordKind(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{routeError(1, 16002), routeError(232, 16002)},
		{"127.0.0.1:16002 - rid:5 - Route Error x", "127.0.0.1:16002 - rid:17 - Route Error x"},
		{"[::1]:16002 - rid:5 - y", "[::1]:16002 - rid:6 - y"},
	} {
		if recordKind(tc.a) != recordKind(tc.b) {
			t.Errorf("%q and %q are of kinds %q and %q, want one", tc.a, tc.b, recordKind(tc.a), recordKind(tc.b))
		}
	}
	for _, tc := range []struct{ a, b string }{
		{routeError(1, 16002), routeError(1, 16003)},
		{"[::1]:16002 - y", "[::1]:16003 - y"},
	} {
		if recordKind(tc.a) == recordKind(tc.b) {
			t.Errorf("%q and %q are both of kind %q, want two", tc.a, tc.b, recordKind(tc.a))
		}
	}
}

// TestRepeatHandlerPeers checks that the records of one peer are not held
// back behind another's.
func TestRepeatHandlerPeers(t *testing.T) {
	log, c, _, lines := newRepeatTest()
	log.Warn("cannot relay frames", "peer", "n1", "err", "timeout")
	log.Warn("cannot relay frames", "peer", "n2", "err", "timeout")
	log.Warn("cannot relay frames", "peer", "n1", "err", "timeout")
	expectLines(t, "two peers", lines(), "peer=n1", "peer=n2")
	c.Advance(10 * time.Second)
	expectLines(t, "the period's end", lines(), "peer=n1 err=timeout repeated=1")
}
