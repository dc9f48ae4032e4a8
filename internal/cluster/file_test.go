package cluster

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
	"github.com/gochat/chat/internal/server/hubtest"
)

// fileTaker is a local user taking files, telling the test how each
// stream opens and ends.
type fileTaker struct {
	*hubtest.Peer
	opened chan struct{}
	ended  chan string
}

func (p *fileTaker) OpenFile(server.FileHead, <-chan struct{}) (server.FileStream, error) {
	p.opened <- struct{}{}
	return takenFile{p}, nil
}

type takenFile struct{ p *fileTaker }

func (f takenFile) Write(server.Chunk) error { return nil }
func (f takenFile) Close()                   { f.p.ended <- "close" }
func (f takenFile) Abort()                   { f.p.ended <- "abort" }

// TestFileOpenGivenUp: a sender that gives up on a transfer whose open
// already reached the receiving node (the sending client went away before
// the answer came) tells that node at once, so the recipient's stream is
// aborted then, not after the stall limit (a plain recipient's queue is
// held by the stream meanwhile).
func TestFileOpenGivenUp(t *testing.T) {
	nodes := testClusterConfigured(t, 2, 10, func(_ int, c *Config) { c.StallTimeout = time.Hour })
	bob := &fileTaker{Peer: hubtest.NewPeer("bob"), opened: make(chan struct{}, 1), ended: make(chan string, 1)}
	if err := nodes[1].Hub().Join(bob, 10); err != nil {
		t.Fatal(err)
	}
	settle(t, nodes)
	rp := nodes[0].Hub().Lookup("bob")
	if rp == nil {
		t.Fatal("bob is not found from the other node")
	}

	// A watcher of the open subject gives up for the sender as soon as the
	// open goes out, which is nearly always before the sender has read
	// the answer; an attempt where the answer wins is closed and made
	// again.
	nc, err := nats.Connect(testEngines(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The watcher's deliveries may lag: an open whose answer won may
	// reach it only once the next attempt has begun. Opens come in the
	// order they were published, one an attempt, so the n-th one seen
	// is attempt n's, and only it gives attempt n up (closing the
	// channel of the attempt after it panicked with "close of closed
	// channel" under load).
	var (
		mu      sync.Mutex
		giveUp  chan struct{} // guarded by mu
		attempt int           // guarded by mu
		seen    int           // guarded by mu
	)
	sub, err := nc.Subscribe(nodes[0].hub.subject(fileOpenSubject, nodes[1].cfg.Node), func(*nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if seen++; seen == attempt {
			close(giveUp)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	await := func(ch chan string, what string) string {
		t.Helper()
		select {
		case how := <-ch:
			return how
		case <-time.After(10 * time.Second):
			t.Fatalf("bob's stream %s", what)
			return ""
		}
	}
	awaitOpen := func(what string) {
		t.Helper()
		select {
		case <-bob.opened:
		case <-time.After(10 * time.Second):
			t.Fatal(what)
		}
	}
	for range 20 {
		mu.Lock()
		attempt++
		giveUp = make(chan struct{})
		cancel := giveUp
		mu.Unlock()
		st, err := rp.OpenFile(server.FileHead{Sender: "al", Filename: "f", Size: 10}, cancel)
		if err == nil { // the answer won
			st.Close()
			awaitOpen("an open that was answered never reached bob")
			if how := await(bob.ended, "was never closed"); how != "close" {
				t.Fatalf("bob's stream ended with %s, want close", how)
			}
			continue
		}
		if !errors.Is(err, server.ErrPeerGone) {
			t.Fatalf("OpenFile: %v, want the sender's giving up", err)
		}
		awaitOpen("the open never reached bob")
		if how := await(bob.ended, "stayed open after the sender gave up"); how != "abort" {
			t.Fatalf("bob's stream ended with %s, want abort", how)
		}
		return
	}
	t.Fatal("in 20 attempts the answer always came before the sender gave up")
}
