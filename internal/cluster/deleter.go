package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// deleter removes registry records in the background, each only if it
// still has the revision it was given, retrying while the registry cannot
// be reached: a user's leave never waits for the engine.
type deleter struct {
	h *Hub

	mu      sync.Mutex
	pending []pendingDelete        // guarded by mu
	queued  map[pendingDelete]bool // what pending holds, so nothing is queued twice; guarded by mu
	busy    bool                   // a delete is under way; guarded by mu
	wake    chan struct{}          // has a token when pending grew
	idle    chan struct{}          // closed and replaced when pending empties; guarded by mu
}

type pendingDelete struct {
	key string
	rev uint64
}

func newDeleter(h *Hub) *deleter {
	return &deleter{h: h, wake: make(chan struct{}, 1), idle: make(chan struct{}), queued: make(map[pendingDelete]bool)}
}

// add schedules the removal of key at revision rev.
func (d *deleter) add(key string, rev uint64) {
	if rev == 0 {
		return
	}
	p := pendingDelete{key, rev}
	d.mu.Lock()
	if d.queued[p] {
		d.mu.Unlock()
		return
	}
	d.queued[p] = true
	d.pending = append(d.pending, p)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// start runs the deleter's goroutine, owned by the node, until it stops.
func (d *deleter) start() {
	n := d.h.n
	n.spawn(d.run)
}

func (d *deleter) run() {
	backoff := time.Duration(0)
	for {
		d.mu.Lock()
		if len(d.pending) == 0 {
			close(d.idle)
			d.idle = make(chan struct{})
			d.mu.Unlock()
			select {
			case <-d.wake:
				continue
			case <-d.h.n.stop:
				return
			}
		}
		p := d.pending[0]
		d.busy = true
		d.mu.Unlock()

		err := d.remove(p)

		d.mu.Lock()
		d.busy = false
		if err == nil {
			delete(d.queued, p)
			d.pending = d.pending[1:]
			backoff = 0
		}
		d.mu.Unlock()
		if err != nil {
			backoff = min(max(2*backoff, 100*time.Millisecond), 2*time.Second)
			d.h.n.log.Debug("registry delete failed; retrying", "key", p.key, "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-d.h.n.stop:
				return
			}
		}
	}
}

// remove deletes one record; a record already gone or replaced counts as
// done.
func (d *deleter) remove(p pendingDelete) error {
	ctx, cancel := d.h.reg.kvCtx()
	defer cancel()
	err := d.h.reg.names.Delete(ctx, p.key, jetstream.LastRevision(p.rev))
	if err == nil || isExists(err) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// drain waits until nothing is pending or ctx ends, and reports whether
// nothing is.
func (d *deleter) drain(ctx context.Context) bool {
	for {
		d.mu.Lock()
		done := len(d.pending) == 0 && !d.busy
		idle := d.idle
		d.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-idle:
		case <-ctx.Done():
			d.mu.Lock()
			left := len(d.pending)
			d.mu.Unlock()
			d.h.n.log.Warn("left registry records behind; the cluster removes them when the lease expires", "pending", left)
			return false
		}
	}
}
