package cluster

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gochat/chat/internal/server/hubtest"
)

// logWatch is a slog handler that passes records on to stderr's handler
// and tells waiters which messages were logged.
type logWatch struct {
	slog.Handler
	seen chan string
}

func newLogWatch() *logWatch {
	return &logWatch{
		Handler: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}),
		seen:    make(chan string, 256),
	}
}

func (w *logWatch) Handle(ctx context.Context, r slog.Record) error {
	select {
	case w.seen <- r.Message:
	default: // a waiter that is not there misses nothing it asked for: see wait
	}
	return w.Handler.Handle(ctx, r)
}

func (w *logWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &logWatch{Handler: w.Handler.WithAttrs(as), seen: w.seen}
}

func (w *logWatch) WithGroup(name string) slog.Handler {
	return &logWatch{Handler: w.Handler.WithGroup(name), seen: w.seen}
}

// wait waits until msg is logged (at Warn or above).
func (w *logWatch) wait(t *testing.T, msg string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-w.seen:
			if m == msg {
				return
			}
		case <-deadline:
			t.Fatalf("never logged %q", msg)
		}
	}
}

func counterValue(t *testing.T, v *prometheus.CounterVec, peer string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(peer).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestRelayPublishFailure drives the failure path of a node's publisher:
// a batch the engine refuses (here one frame larger than the engine's
// largest message) is dropped, logged and counted; the publisher goes on
// relaying, and the destination finds the gap in the sequence, logs it
// and counts it. (A loss of the very first batch from a source is not
// seen as a gap: the destination learns the sequence from what arrives.)
func TestRelayPublishFailure(t *testing.T) {
	watch := []*logWatch{newLogWatch(), newLogWatch()}
	nodes := testClusterLogged(t, 2, 10, func(i int) *slog.Logger { return slog.New(watch[i]) })
	src, dst := nodes[0], nodes[1]
	bob := hubtest.NewPeer("bob")
	if err := dst.Hub().Join(bob, 10); err != nil {
		t.Fatal(err)
	}
	settle(t, nodes)
	p := src.Hub().Lookup("bob")
	if p == nil {
		t.Fatal("bob is not found from the other node")
	}
	// One batch first: the destination knows a source's sequence from
	// the first batch it gets.
	if err := p.Send([]byte("forward_message 9 1 a before")); err != nil {
		t.Fatal(err)
	}
	bob.WaitFrames(t, 1)
	if err := p.Send(make([]byte, 2<<20)); err != nil { // the engine takes at most 1 MiB
		t.Fatalf("Send = %v; the frame should be queued, and fail in the publisher", err)
	}
	watch[0].wait(t, "cannot relay frames")
	if got := counterValue(t, src.m.dropped, dst.cfg.Node); got != 1 {
		t.Errorf("dropped frames counted: %v, want 1", got)
	}
	if err := p.Send([]byte("forward_message 8 1 a after")); err != nil {
		t.Fatal(err)
	}
	if got := bob.WaitFrames(t, 2); len(got) != 2 || string(got[1]) != "forward_message 8 1 a after" {
		t.Fatalf("bob got %q, want the frames before and after the refused one", got)
	}
	watch[1].wait(t, "frames from a node were lost")
	if got := counterValue(t, dst.m.gaps, src.cfg.Node); got != 1 {
		t.Errorf("gaps counted: %v, want 1", got)
	}
}
