package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// deleteBatch is how many deletes the deleter queues at once with the
// node's writer: deletes and joins share the writer's queue, so a mass
// leave never holds a join back by more than one batch.
const deleteBatch = 1024

// deleter removes registry records in the background, each only if it
// still has the revision it was given, retrying while the registry cannot
// be reached: a user's leave never waits for the engine. Deletes go in
// batches through the node's writer, without a round trip between them:
// one at a time, the 19,000 users of a node leaving at once took minutes
// to be removed (issue 21), and the users a fence cuts off, or a dead
// node's that the sweeper finds, come in the same numbers.
type deleter struct {
	// Set at construction, read-only.
	nodeInfo
	w   *writer
	reg *registry

	mu      sync.Mutex
	pending []pendingDelete        // guarded by mu
	queued  map[pendingDelete]bool // what pending and the batch under way hold, so nothing is queued twice; guarded by mu
	busy    int                    // the deletes of the batch under way; guarded by mu
	wake    chan struct{}          // has a token when pending grew
	idle    chan struct{}          // closed and replaced when pending empties; guarded by mu
}

type pendingDelete struct {
	key string
	rev uint64
}

func newDeleter(n nodeInfo, w *writer, reg *registry) *deleter {
	return &deleter{nodeInfo: n, w: w, reg: reg, wake: make(chan struct{}, 1), idle: make(chan struct{}), queued: make(map[pendingDelete]bool)}
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
	d.spawn(d.run)
}

func (d *deleter) run() {
	backoff := time.Duration(0)
	for {
		d.mu.Lock()
		if len(d.pending) == 0 {
			close(d.idle)
			d.idle = make(chan struct{})
			d.pending = nil // let the array go after a mass leave
			d.mu.Unlock()
			select {
			case <-d.wake:
				continue
			case <-d.stop:
				return
			}
		}
		k := min(len(d.pending), deleteBatch)
		batch := make([]pendingDelete, k)
		copy(batch, d.pending)
		d.pending = d.pending[k:]
		d.busy = k
		d.mu.Unlock()

		failed := d.remove(batch)

		d.mu.Lock()
		d.busy = 0
		for _, p := range batch {
			if !failed[p] {
				delete(d.queued, p)
			}
		}
		for p := range failed {
			d.pending = append(d.pending, p)
		}
		d.mu.Unlock()
		if len(failed) == 0 {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 2*time.Second)
		select {
		case <-time.After(backoff):
		case <-d.stop:
			return
		}
	}
}

// remove deletes the records of batch, all queued at once, and returns
// those it could not: a record already gone or replaced counts as done.
func (d *deleter) remove(batch []pendingDelete) map[pendingDelete]bool {
	ops := make([]writeOp, len(batch))
	for i, p := range batch {
		ops[i] = writeOp{key: p.key, expect: p.rev, del: true}
		d.w.submit(&ops[i])
	}
	var failed map[pendingDelete]bool
	for i, p := range batch {
		r := d.w.wait(&ops[i])
		switch {
		case r.err == nil:
			d.reg.noteDeleted(p.key, r.rev)
		case isExists(r.err) || errors.Is(r.err, jetstream.ErrKeyNotFound):
		default:
			if failed == nil {
				failed = make(map[pendingDelete]bool)
				d.log.Debug("registry delete failed; retrying", "key", p.key, "err", r.err)
			}
			failed[p] = true
		}
	}
	return failed
}

// drain waits until nothing is pending or ctx ends, and reports whether
// nothing is.
func (d *deleter) drain(ctx context.Context) bool {
	for {
		d.mu.Lock()
		done := len(d.pending) == 0 && d.busy == 0
		idle := d.idle
		d.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-idle:
		case <-ctx.Done():
			d.mu.Lock()
			left := len(d.pending) + d.busy
			d.mu.Unlock()
			d.log.Warn("left registry records behind; the cluster removes them when the lease expires", "pending", left)
			return false
		}
	}
}
