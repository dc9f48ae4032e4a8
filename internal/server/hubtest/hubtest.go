// Package hubtest holds the contract every server.Hub must keep, as tests
// that run against any implementation: the server's LocalHub, and a
// cluster's hub seen from each of its nodes.
package hubtest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochat/chat/internal/server"
)

// Fixture is one user registry as seen from one or more places (a cluster's
// nodes; a LocalHub is one place).
type Fixture struct {
	// Hubs are the places; a change made through one must show in all.
	Hubs []server.Hub
	// Sync waits until every hub shows every change made before the call
	// (nil: changes show at once).
	Sync func(t *testing.T)
}

// New makes a fresh registry whose cap is maxUsers.
type New func(t *testing.T, maxUsers int) Fixture

// Peer is a server.Peer that records the frames it gets.
type Peer struct {
	name   string
	mu     sync.Mutex
	frames [][]byte
	got    chan struct{} // has a token when a frame came
}

// NewPeer returns a recording peer called name.
func NewPeer(name string) *Peer { return &Peer{name: name, got: make(chan struct{}, 1)} }

// Name implements server.Peer.
func (p *Peer) Name() string { return p.name }

// Send implements server.Peer.
func (p *Peer) Send(frame []byte) error {
	p.mu.Lock()
	p.frames = append(p.frames, slices.Clone(frame))
	p.mu.Unlock()
	select {
	case p.got <- struct{}{}:
	default:
	}
	return nil
}

// Offer implements server.Peer.
func (p *Peer) Offer(frame []byte) (<-chan struct{}, error) { return nil, p.Send(frame) }

// OpenFile implements server.Peer; files are not part of the contract.
func (p *Peer) OpenFile(server.FileHead, <-chan struct{}) (server.FileStream, error) {
	return nil, errors.New("hubtest.Peer takes no files")
}

// Frames returns what the peer got.
func (p *Peer) Frames() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.frames)
}

// WaitFrames waits until the peer got n frames.
func (p *Peer) WaitFrames(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if f := p.Frames(); len(f) >= n {
			return f
		}
		select {
		case <-p.got:
		case <-deadline.C:
			t.Fatalf("%s got %d frames, want %d", p.name, len(p.Frames()), n)
		}
	}
}

// Run runs the contract against registries made by newFixture.
func Run(t *testing.T, newFixture New) {
	t.Run("join, lookup, list, leave", func(t *testing.T) { joinLookupLeave(t, newFixture(t, 10)) })
	t.Run("names are unique", func(t *testing.T) { uniqueNames(t, newFixture(t, 10)) })
	t.Run("the cap is exact and full comes before taken", func(t *testing.T) { capExact(t, newFixture(t, 3)) })
	t.Run("leave of another session does nothing", func(t *testing.T) { staleLeave(t, newFixture(t, 10)) })
	t.Run("racing joins", func(t *testing.T) { racingJoins(t, newFixture(t, 10)) })
	t.Run("frames reach the peer through any place", func(t *testing.T) { delivery(t, newFixture(t, 10)) })
}

func (f Fixture) sync(t *testing.T) {
	if f.Sync != nil {
		f.Sync(t)
	}
}

// at returns the i-th place, wrapping.
func (f Fixture) at(i int) server.Hub { return f.Hubs[i%len(f.Hubs)] }

func joinLookupLeave(t *testing.T, f Fixture) {
	names := []string{"bob", "Alice", "carol", "ßeta", "alice"}
	peers := make([]*Peer, len(names))
	for i, name := range names {
		peers[i] = NewPeer(name)
		if err := f.at(i).Join(peers[i], 10); err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
	}
	f.sync(t)
	want := []string{"Alice", "alice", "bob", "carol", "ßeta"} // byte order
	for i, h := range f.Hubs {
		if got := h.Users(); !slices.Equal(got, want) {
			t.Errorf("place %d lists %q, want %q", i, got, want)
		}
		if n := h.Len(); n != len(want) {
			t.Errorf("place %d: Len %d, want %d", i, n, len(want))
		}
		for j, name := range names {
			p := h.Lookup(name)
			if p == nil {
				t.Fatalf("place %d: Lookup(%q) = nil", i, name)
			}
			if p.Name() != name {
				t.Errorf("place %d: Lookup(%q).Name() = %q", i, name, p.Name())
			}
			if j%len(f.Hubs) == i && p != server.Peer(peers[j]) {
				t.Errorf("place %d: Lookup(%q) is not the peer that joined there", i, name)
			}
		}
		if p := h.Lookup("nobody"); p != nil {
			t.Errorf("place %d: Lookup(nobody) = %v", i, p)
		}
	}
	f.at(0).Leave(peers[0]) // bob
	f.sync(t)
	for i, h := range f.Hubs {
		if p := h.Lookup("bob"); p != nil {
			t.Errorf("place %d: bob still found after leaving", i)
		}
		if got := h.Users(); slices.Contains(got, "bob") {
			t.Errorf("place %d still lists bob: %q", i, got)
		}
	}
	// The name is free again, from any place.
	if err := f.at(1).Join(NewPeer("bob"), 10); err != nil {
		t.Fatalf("bob joining again: %v", err)
	}
}

func uniqueNames(t *testing.T, f Fixture) {
	if err := f.at(0).Join(NewPeer("dup"), 10); err != nil {
		t.Fatal(err)
	}
	f.sync(t)
	for i := range f.Hubs {
		if err := f.at(i).Join(NewPeer("dup"), 10); !errors.Is(err, server.ErrNameTaken) {
			t.Errorf("place %d: second join of dup = %v, want ErrNameTaken", i, err)
		}
	}
	f.sync(t)
	for i, h := range f.Hubs {
		if n := h.Len(); n != 1 {
			t.Errorf("place %d: Len %d after refused joins, want 1", i, n)
		}
	}
}

func capExact(t *testing.T, f Fixture) {
	for i := range 3 {
		if err := f.at(i).Join(NewPeer(fmt.Sprint("u", i)), 3); err != nil {
			t.Fatal(err)
		}
	}
	f.sync(t)
	for i := range f.Hubs {
		if err := f.at(i).Join(NewPeer("extra"), 3); !errors.Is(err, server.ErrServerFull) {
			t.Errorf("place %d: join past the cap = %v, want ErrServerFull", i, err)
		}
		// Full is decided before taken.
		if err := f.at(i).Join(NewPeer("u0"), 3); !errors.Is(err, server.ErrServerFull) {
			t.Errorf("place %d: taken name when full = %v, want ErrServerFull", i, err)
		}
	}
}

func staleLeave(t *testing.T, f Fixture) {
	first := NewPeer("sam")
	if err := f.at(0).Join(first, 10); err != nil {
		t.Fatal(err)
	}
	f.at(0).Leave(first)
	f.sync(t)
	second := NewPeer("sam")
	if err := f.at(0).Join(second, 10); err != nil {
		t.Fatal(err)
	}
	f.at(0).Leave(first) // the old session's leave must not remove the new one
	f.sync(t)
	for i, h := range f.Hubs {
		if h.Lookup("sam") == nil {
			t.Errorf("place %d: sam gone after the old session's leave", i)
		}
	}
}

func racingJoins(t *testing.T, f Fixture) {
	const n, same = 60, 30
	var admitted, full, taken atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := f.at(i).Join(NewPeer(fmt.Sprint("r", i)), 10)
			switch {
			case err == nil:
				admitted.Add(1)
			case errors.Is(err, server.ErrServerFull):
				full.Add(1)
			default:
				t.Errorf("join r%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 10 || full.Load() != n-10 {
		t.Fatalf("%d admitted, %d full; want 10 and %d", admitted.Load(), full.Load(), n-10)
	}
	f.sync(t)
	for i, h := range f.Hubs {
		if got := h.Len(); got != 10 {
			t.Errorf("place %d: Len %d, want 10", i, got)
		}
	}
	// Free the places, then race for one name.
	for _, h := range f.Hubs {
		for _, name := range h.Users() {
			if p, ok := h.Lookup(name).(*Peer); ok {
				h.Leave(p)
			}
		}
	}
	f.sync(t)
	var wins atomic.Int32
	for i := range same {
		wg.Go(func() {
			err := f.at(i).Join(NewPeer("one"), 10)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, server.ErrNameTaken):
				taken.Add(1)
			default:
				t.Errorf("join of one: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || taken.Load() != same-1 {
		t.Fatalf("%d joins of one name won and %d were refused, want 1 and %d", wins.Load(), taken.Load(), same-1)
	}
}

func delivery(t *testing.T, f Fixture) {
	peers := make([]*Peer, len(f.Hubs))
	for i := range f.Hubs {
		peers[i] = NewPeer(fmt.Sprint("p", i))
		if err := f.at(i).Join(peers[i], 10); err != nil {
			t.Fatal(err)
		}
	}
	f.sync(t)
	// Every place sends numbered frames to every peer, in order.
	const k = 20
	for i, h := range f.Hubs {
		for j := range peers {
			p := h.Lookup(fmt.Sprint("p", j))
			for m := range k {
				if err := p.Send(fmt.Appendf(nil, "from %d #%d", i, m)); err != nil {
					t.Fatalf("send from place %d to p%d: %v", i, j, err)
				}
			}
		}
	}
	for j, p := range peers {
		frames := p.WaitFrames(t, k*len(f.Hubs))
		next := make([]int, len(f.Hubs))
		for _, fr := range frames {
			var from, m int
			if _, err := fmt.Sscanf(string(fr), "from %d #%d", &from, &m); err != nil {
				t.Fatalf("p%d got %q", j, fr)
			}
			if m != next[from] {
				t.Fatalf("p%d got #%d from place %d, want #%d (order per sender)", j, m, from, next[from])
			}
			next[from]++
		}
	}
}
