package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gochat/chat/internal/server"
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

// fullPeer is a local user whose queue is full on the first Offer; the
// Offers after it wait for the test, which hears of each on offering.
type fullPeer struct {
	name     string
	retry    chan struct{} // returned by the first Offer
	offering chan []byte   // each later Offer, before it waits on release
	release  chan struct{}
	mu       sync.Mutex
	offers   int
}

func (p *fullPeer) Name() string            { return p.name }
func (p *fullPeer) Send(frame []byte) error { _, err := p.Offer(frame); return err }
func (p *fullPeer) OpenFile(server.FileHead, <-chan struct{}) (server.FileStream, error) {
	return nil, errors.New("no files here")
}

func (p *fullPeer) Offer(frame []byte) (<-chan struct{}, error) {
	p.mu.Lock()
	p.offers++
	first := p.offers == 1
	p.mu.Unlock()
	if first {
		return p.retry, nil
	}
	p.offering <- frame
	<-p.release
	return nil, nil
}

// TestLeaveWhileFramesWait drives a local user's leave while the frames
// from another node wait for room in its queue and one of them is being
// offered: the leave acks every waiting frame once, the frame in flight
// included; the drain ends without touching them again (it once sliced
// the emptied list and crashed the node); and a later session of the name
// gets its frames directly, not behind the gone one's.
func TestLeaveWhileFramesWait(t *testing.T) {
	n := testCluster(t, 1, 10)[0]
	r := n.hub.relay
	// Acks pile up in r.acks instead of being published, to be counted.
	// (Closing the node stops the timer.)
	r.inMu.Lock()
	r.ackTick = time.AfterFunc(time.Hour, func() {})
	r.inMu.Unlock()

	bob := &fullPeer{name: "bob", retry: make(chan struct{}), offering: make(chan []byte), release: make(chan struct{})}
	key := creditKey{name: "bob", token: 7}
	f1, f2 := []byte("forward_message 9 1 a one"), []byte("forward_message 9 1 a two")
	if r.deliverLocal("src", bob, key, f1) {
		t.Fatal("the first frame was delivered to a full queue")
	}
	if r.deliverLocal("src", bob, key, f2) {
		t.Fatal("the second frame passed the first")
	}
	close(bob.retry)
	select {
	case got := <-bob.offering:
		if !bytes.Equal(got, f1) {
			t.Fatalf("offered %q again, want %q", got, f1)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting frame was never offered again")
	}
	r.localLeft(bob) // while f1 is being offered
	if got := r.nwaiting.Load(); got != 0 {
		t.Errorf("%d users wait after the leave, want 0", got)
	}
	close(bob.release)

	// A new session of the name: its frame goes straight to it.
	bob2 := hubtest.NewPeer("bob")
	key2 := creditKey{name: "bob", token: 8}
	if !r.deliverLocal("src", bob2, key2, f2) {
		t.Fatal("the new session's frame waited behind the gone session's")
	}
	bob2.WaitFrames(t, 1)

	// The drain is the node's: closing the node waits for it.
	n.Close()
	r.inMu.Lock()
	acked := r.acks["src"][key]
	r.inMu.Unlock()
	if want := len(f1) + len(f2); acked != want {
		t.Errorf("%d bytes acked for the gone session, want %d (each waiting frame once)", acked, want)
	}
	bob.mu.Lock()
	offers := bob.offers
	bob.mu.Unlock()
	if offers != 2 {
		t.Errorf("%d offers to the gone session, want 2 (the drain stops at the leave)", offers)
	}
}
