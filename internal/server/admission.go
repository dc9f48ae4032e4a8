package server

import (
	"container/list"
	"sync"
	"time"
)

// admission orders joins first come, first served by accept order: a
// connection's join waits while an earlier-accepted connection has not yet
// had its first frame decided, but never longer than grace after that
// earlier connection was accepted.
type admission struct {
	grace time.Duration

	mu      sync.Mutex
	pending *list.List // of *ticket, in accept order; guarded by mu
}

// ticket is one accepted connection's place in the admission order.
type ticket struct {
	accepted time.Time
	done     chan struct{} // closed by release
	elem     *list.Element // nil once out of the list; guarded by admission.mu
	released bool          // guarded by admission.mu
}

func newAdmission(grace time.Duration) *admission {
	return &admission{grace: grace, pending: list.New()}
}

// add appends a ticket for a connection accepted now. It must be called
// in accept order.
func (a *admission) add(now time.Time) *ticket {
	t := &ticket{accepted: now, done: make(chan struct{})}
	a.mu.Lock()
	t.elem = a.pending.PushBack(t)
	a.mu.Unlock()
	return t
}

// release marks t's first frame as decided (or its connection as gone).
// It is idempotent.
func (a *admission) release(t *ticket) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.released {
		return
	}
	t.released = true
	if t.elem != nil {
		a.pending.Remove(t.elem)
		t.elem = nil
	}
	close(t.done)
}

// wait blocks until no connection accepted before t is still pending
// within its grace period, or cancel is closed.
func (a *admission) wait(t *ticket, cancel <-chan struct{}) {
	for {
		a.mu.Lock()
		front := a.pending.Front()
		if front == nil || front.Value.(*ticket) == t || t.elem == nil {
			a.mu.Unlock()
			return
		}
		first := front.Value.(*ticket)
		a.mu.Unlock()

		left := time.Until(first.accepted.Add(a.grace))
		if left > 0 {
			timer := time.NewTimer(left)
			select {
			case <-first.done:
			case <-timer.C:
			case <-cancel:
				timer.Stop()
				return
			}
			timer.Stop()
		}
		a.expire(first)
	}
}

// expire takes t out of the order without releasing it, so it no longer
// holds up later joins.
func (a *admission) expire(t *ticket) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(t.accepted) >= a.grace || t.released {
		if t.elem != nil {
			a.pending.Remove(t.elem)
			t.elem = nil
		}
	}
}
