package cluster

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

// movingPeer stands for a session granted resume, with cursor frames, as
// the server's session does for the hub: it records the frames it gets
// with their origin and sequence, the positions it is told to skip to,
// and whether it was let go of (moved away).
type movingPeer struct {
	name  string
	token protocol.Token

	mu     sync.Mutex
	frames []originFrame     // guarded by mu
	skips  map[string]uint64 // guarded by mu
	got    chan struct{}     // has a token when a frame came
	moved  chan struct{}     // closed by MovedAway
	once   sync.Once
}

type originFrame struct {
	origin string
	seq    uint64
	frame  string
}

func newMovingPeer(name string, token protocol.Token) *movingPeer {
	return &movingPeer{name: name, token: token, skips: make(map[string]uint64), got: make(chan struct{}, 1), moved: make(chan struct{})}
}

var (
	_ server.Resumable    = (*movingPeer)(nil)
	_ server.Retainer     = (*movingPeer)(nil)
	_ server.OriginSender = (*movingPeer)(nil)
	_ server.Skipper      = (*movingPeer)(nil)
	_ server.Movable      = (*movingPeer)(nil)
)

func (p *movingPeer) Name() string                            { return p.name }
func (p *movingPeer) Token() protocol.Token                   { return p.token }
func (p *movingPeer) Window() time.Duration                   { return 30 * time.Second }
func (p *movingPeer) Retain() int                             { return server.DefaultResumeBuffer }
func (p *movingPeer) Originated() uint64                      { return 0 }
func (p *movingPeer) Send(frame []byte) error                 { return p.SendFrom(frame, "", 0) }
func (p *movingPeer) Offer(f []byte) (<-chan struct{}, error) { return nil, p.Send(f) }
func (p *movingPeer) OfferFrom(f []byte, origin string, seq uint64) (<-chan struct{}, error) {
	return nil, p.SendFrom(f, origin, seq)
}

func (p *movingPeer) OpenFile(server.FileHead, <-chan struct{}) (server.FileStream, error) {
	return nil, errors.New("movingPeer takes no files")
}

func (p *movingPeer) SendFrom(frame []byte, origin string, seq uint64) error {
	p.mu.Lock()
	p.frames = append(p.frames, originFrame{origin, seq, string(frame)})
	p.mu.Unlock()
	select {
	case p.got <- struct{}{}:
	default:
	}
	return nil
}

func (p *movingPeer) SkipTo(origin string, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.skips[origin] = max(p.skips[origin], seq)
}

func (p *movingPeer) MovedAway() { p.once.Do(func() { close(p.moved) }) }

func (p *movingPeer) skipped(origin string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.skips[origin]
}

// waitFrames waits until the peer got n frames, and returns them.
func (p *movingPeer) waitFrames(t *testing.T, n int) []originFrame {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		f := slices.Clone(p.frames)
		p.mu.Unlock()
		if len(f) >= n {
			return f
		}
		select {
		case <-p.got:
		case <-deadline.C:
			t.Fatalf("%s got %d frames, want %d: %v", p.name, len(f), n, f)
		}
	}
}

// waitMovedAway waits until the peer was let go of as moved away.
func (p *movingPeer) waitMovedAway(t *testing.T) {
	t.Helper()
	select {
	case <-p.moved:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was never let go of", p.name)
	}
}
