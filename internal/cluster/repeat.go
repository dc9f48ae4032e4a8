package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// repeatEvery is how often, at most, a kind of record that repeats is
// logged. While a peer was down, its engine logged "Error trying to
// connect to route" 232 times in 30 s (every route connection of the
// pool, every second), and after recovery "removing records that no live
// session holds" came 12 times in 4 s (issue 23 item 17).
const repeatEvery = 10 * time.Second

// clock is the time a repeatHandler keeps; tests give it a fake one.
type clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless the
	// returned stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// repeatHandler is a slog.Handler that logs the first record of a kind
// at once and holds back the others that follow within its period: at
// the period's end the last of them is logged, with repeated (how many
// were held back, itself included) and in_last (the period), and a new
// period begins; a period with none held back ends the kind's run, and
// its next record is logged at once again. So a kind that repeats
// without end costs one record per period. A record's kind is its level
// and message, numbers ignored (attempt counts, connection ids) but
// those of addresses (a token with a dot or a bracket), and its peer
// attribute if it has one: a peer's errors are not mixed with another's. Handlers made by WithAttrs and WithGroup
// share the runs of their parent.
type repeatHandler struct {
	inner slog.Handler
	s     *repeatState
}

type repeatState struct {
	clock  clock
	every  time.Duration
	mu     sync.Mutex
	runs   map[string]*repeatRun
	closed bool // by close: records pass through unheld
}

// repeatRun is a kind of record being held back.
type repeatRun struct {
	held  int          // records held back this period
	last  slog.Record  // the last of them
	h     slog.Handler // the handler it came through
	since time.Time    // the period's start
	stop  func() bool  // stops the period's timer
}

// newRepeatHandler returns a repeatHandler that passes records to inner,
// each kind at most once every every.
func newRepeatHandler(inner slog.Handler, c clock, every time.Duration) *repeatHandler {
	return &repeatHandler{inner: inner, s: &repeatState{clock: c, every: every, runs: map[string]*repeatRun{}}}
}

func (h *repeatHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *repeatHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &repeatHandler{inner: h.inner.WithAttrs(as), s: h.s}
}

func (h *repeatHandler) WithGroup(name string) slog.Handler {
	return &repeatHandler{inner: h.inner.WithGroup(name), s: h.s}
}

func (h *repeatHandler) Handle(ctx context.Context, r slog.Record) error {
	s := h.s
	key := r.Level.String() + " " + recordKind(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "peer" {
			key += " peer=" + a.Value.String()
			return false
		}
		return true
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return h.inner.Handle(ctx, r)
	}
	if run, ok := s.runs[key]; ok {
		run.held++
		run.last, run.h = r.Clone(), h.inner
		s.mu.Unlock()
		return nil
	}
	run := &repeatRun{since: s.clock.Now()}
	s.runs[key] = run
	run.stop = s.clock.AfterFunc(s.every, func() { s.endPeriod(key, run) })
	s.mu.Unlock()
	return h.inner.Handle(ctx, r)
}

// endPeriod ends run's period: it logs the last record held back, if
// any, and begins another period, or else ends the run.
func (s *repeatState) endPeriod(key string, run *repeatRun) {
	s.mu.Lock()
	if s.closed || s.runs[key] != run {
		s.mu.Unlock()
		return
	}
	if run.held == 0 {
		delete(s.runs, key)
		s.mu.Unlock()
		return
	}
	r, h := run.summary(s.clock.Now())
	run.held, run.last, run.h = 0, slog.Record{}, nil
	run.since = s.clock.Now()
	run.stop = s.clock.AfterFunc(s.every, func() { s.endPeriod(key, run) })
	s.mu.Unlock()
	h.Handle(context.Background(), r)
}

// summary returns run's last record held back, saying how many were,
// and the handler to log it through.
func (run *repeatRun) summary(now time.Time) (slog.Record, slog.Handler) {
	r := run.last.Clone()
	r.AddAttrs(slog.Int("repeated", run.held), slog.Duration("in_last", now.Sub(run.since).Round(time.Millisecond)))
	return r, run.h
}

// close logs what is held back at once, and lets every later record
// through unheld: called as the node ends, so that nothing held is lost.
func (s *repeatState) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	type pending struct {
		r slog.Record
		h slog.Handler
	}
	var out []pending
	now := s.clock.Now()
	for _, run := range s.runs {
		run.stop()
		if run.held > 0 {
			r, h := run.summary(now)
			out = append(out, pending{r, h})
		}
	}
	s.runs = nil
	s.mu.Unlock()
	for _, p := range out {
		p.h.Handle(context.Background(), p.r)
	}
}

// recordKind returns msg with its numbers replaced by '#', but in the
// words that look like addresses.
func recordKind(msg string) string {
	words := strings.Split(msg, " ")
	for i, w := range words {
		if strings.ContainsAny(w, ".[") {
			continue
		}
		var b strings.Builder
		digits := false
		for _, c := range w {
			if c >= '0' && c <= '9' {
				if !digits {
					b.WriteByte('#')
				}
				digits = true
				continue
			}
			digits = false
			b.WriteRune(c)
		}
		words[i] = b.String()
	}
	return strings.Join(words, " ")
}
