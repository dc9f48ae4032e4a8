package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// heartbeatSubject, after the cluster's name, carries every node's
// heartbeats.
const heartbeatSubject = ".hb"

// A node's states in its heartbeats.
const (
	stateUp      = "up"
	stateLeaving = "leaving"
)

// liveness knows which nodes are alive (heartbeats on core NATS: a node
// that went silent has its users hidden within seconds) and keeps this
// node's lease (a key with a TTL: an expired lease lets the cluster give a
// dead node's names away, and a node that cannot renew its own fences
// itself first).
type liveness struct {
	// Set at construction, read-only.
	nodeInfo
	h    *Hub // told of changes in who is alive; fenced and let in again
	reg  *registry
	del  *deleter
	addr string // the address this node serves chat on, for its lease

	sub *nats.Subscription // set by start

	leaseRev  atomic.Uint64 // the lease's revision; 0 before it is taken
	renewedAt atomic.Int64  // when the last renewal that succeeded was sent (Unix ns)
	sweep     chan struct{} // has a token when a sweep of dead records is due
	leaseOp   chan struct{} // has a token while a renewal or the release is under way

	mu      sync.RWMutex
	nodes   map[string]*nodeState // by node name; guarded by mu
	stateCh chan struct{}         // closed and replaced when a heartbeat changes a node's state; guarded by mu

	testHookHeard func() // if set, called after a heartbeat that changed a node's state; guarded by mu
}

type nodeState struct {
	inc    uint64
	seen   time.Time // last heartbeat
	left   bool      // said it was leaving
	silent bool      // nothing heard for heartbeatTimeout
}

func newLiveness(h *Hub, addr string) *liveness {
	return &liveness{nodeInfo: h.nodeInfo, h: h, reg: h.reg, del: h.del, addr: addr, nodes: make(map[string]*nodeState), stateCh: make(chan struct{}), sweep: make(chan struct{}, 1), leaseOp: make(chan struct{}, 1)}
}

// start subscribes to the heartbeats.
func (l *liveness) start(context.Context) error {
	var err error
	l.sub, err = l.nc.Subscribe(l.cluster+heartbeatSubject, l.heard)
	return err
}

func (l *liveness) unsubscribe() {
	if l.sub != nil {
		l.sub.Unsubscribe()
	}
}

// heard records a heartbeat: "<incarnation> <state> <node>".
func (l *liveness) heard(m *nats.Msg) {
	f := strings.SplitN(string(m.Data), " ", 3)
	if len(f) != 3 {
		return
	}
	inc, err := strconv.ParseUint(f[0], 16, 64)
	if err != nil {
		return
	}
	node, left := f[2], f[1] == stateLeaving
	if node != l.self && !l.reg.leased(node, inc) {
		// Not a node of the cluster (or not yet: its lease reaches
		// this node's cache within milliseconds, and counts as
		// hearing it then: leaseRenewed).
		l.ignored.note(l.log, "heartbeat", node)
		return
	}
	l.mark(node, inc, left, f[1])
}

// leaseRenewed counts a lease written within heartbeatTimeout as hearing
// its node: the node writes it itself, every renewEvery, and it may reach
// this node before the node's first heartbeat that can be taken (one sent
// before the lease was seen here is ignored, and the next comes
// heartbeatEvery later). Until a peer is heard its users are not online
// here: a user who joined this node the moment it came back from a
// partition, having never heard that peer, was told "non-existent user"
// for a user on it (TestPartition, CI, 2026-12-07). It is called with the
// registry's lock held.
func (l *liveness) leaseRenewed(node string, e leaseEntry) {
	if node == l.self || time.Since(e.created) > heartbeatTimeout {
		return
	}
	l.mu.RLock()
	st, ok := l.nodes[node]
	fresh := ok && st.inc == e.inc && (st.left || !st.silent && time.Since(st.seen) < heartbeatEvery)
	l.mu.RUnlock()
	if fresh {
		return // heard already (or said it is leaving: its lease is about to go)
	}
	l.mark(node, e.inc, false, stateUp)
}

// mark records that node, in incarnation inc, was heard in state.
func (l *liveness) mark(node string, inc uint64, left bool, state string) {
	l.mu.Lock()
	st, ok := l.nodes[node]
	if !ok {
		st = &nodeState{}
		l.nodes[node] = st
	}
	changed := !ok || st.inc != inc || st.left != left || st.silent
	st.inc, st.seen, st.left, st.silent = inc, time.Now(), left, false
	if changed {
		close(l.stateCh)
		l.stateCh = make(chan struct{})
	}
	hook := l.testHookHeard
	l.mu.Unlock()
	if !ok && node != l.self {
		l.m.peer(node)
	}
	if changed {
		l.h.changed()
		if hook != nil {
			hook()
		}
		if node != l.self {
			l.log.Info("node heard", "peer", node, "state", state)
		}
	}
}

// forget drops what is known of node, whose lease is gone: a node that
// comes back takes a lease again before it is heard.
func (l *liveness) forget(node string) {
	if node == l.self {
		return
	}
	l.mu.Lock()
	delete(l.nodes, node)
	l.mu.Unlock()
	l.m.forget(node)
}

// awaitSilent waits, at most d, until every other node that fell silent
// (and did not say it was leaving) is heard again: a node back from a
// partition hears the others again only after its engine connection is,
// and until then their users would look gone to its own.
func (l *liveness) awaitSilent(d time.Duration) {
	l.awaitState(d, func() bool {
		l.mu.RLock()
		defer l.mu.RUnlock()
		for node, st := range l.nodes {
			if node != l.self && st.silent && !st.left {
				return false
			}
		}
		return true
	})
}

// awaitState waits, at most d and not past the node's stop, until ready
// reports true, checking it again at each change of a node's state.
func (l *liveness) awaitState(d time.Duration, ready func() bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l.mu.RLock()
		ch := l.stateCh // taken before ready looks: a change after it closes ch
		l.mu.RUnlock()
		if ready() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		case <-l.stop:
			return
		}
	}
}

// alive reports whether node, in incarnation inc, is heard from.
func (l *liveness) alive(node string, inc uint64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	st, ok := l.nodes[node]
	return ok && st.inc == inc && !st.left && !st.silent
}

// announce publishes one heartbeat in state.
func (l *liveness) announce(state string) {
	l.nc.Publish(l.cluster+heartbeatSubject, fmt.Appendf(nil, "%x %s %s", l.inc, state, l.self))
}

// acquire takes this node's lease: a fresh one, or the stale one of an
// earlier incarnation. A lease that is being renewed belongs to a live
// node of the same name, and this one is refused.
func (l *liveness) acquire(ctx context.Context) error {
	reg := l.reg
	val := leaseEntry{inc: l.inc, addr: l.addr}.value()
	var lastRev uint64
	for attempt := 0; ; attempt++ {
		kctx, cancel := context.WithTimeout(ctx, kvTimeout)
		rev, err := reg.nodes.Create(kctx, nodeKey(l.self), val)
		if err == nil {
			cancel()
			l.took(rev)
			return nil
		}
		if !isExists(err) {
			cancel()
			// The bucket's stream may still be electing its leader
			// (a cluster just formed): try again until the wait ends.
			if err := pause(ctx, err); err != nil {
				return fmt.Errorf("taking the node's lease: %w", err)
			}
			continue
		}
		e, err := reg.nodes.Get(kctx, nodeKey(l.self))
		cancel()
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			if err := pause(ctx, err); err != nil {
				return fmt.Errorf("reading the node's lease: %w", err)
			}
			continue
		}
		old, _ := parseLease(e.Value())
		age := time.Since(e.Created())
		if age > 3*renewEvery {
			kctx, cancel := context.WithTimeout(ctx, kvTimeout)
			rev, err := reg.nodes.Update(kctx, nodeKey(l.self), val, e.Revision())
			cancel()
			if err == nil {
				l.log.Info("took over the lease of an earlier incarnation", "earlier", fmt.Sprintf("%016x", old.inc), "unrenewed_for", age.Round(time.Millisecond))
				l.took(rev)
				return nil
			}
			continue
		}
		if lastRev != 0 && e.Revision() != lastRev {
			return fmt.Errorf("%w: %q (serving chat at %s) renews its lease", errNodeTaken, l.self, old.addr)
		}
		lastRev = e.Revision()
		if attempt == 0 {
			l.log.Info("waiting: the node name's lease was renewed recently; taking it over if nobody renews it", "renewed_ago", age.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %q", errNodeTaken, l.self)
		case <-time.After(2 * renewEvery):
		}
	}
}

// pause waits a moment after err before another try, or returns err once
// ctx is done.
func pause(ctx context.Context, err error) error {
	select {
	case <-ctx.Done():
		return err
	case <-time.After(250 * time.Millisecond):
		return nil
	}
}

func (l *liveness) took(rev uint64) {
	l.leaseRev.Store(rev)
	l.renewedAt.Store(time.Now().UnixNano())
	l.announce(stateUp)
}

// awaitPeers waits, at most d, until every other node holding a fresh
// lease has been heard, so that a node that has just started lists their
// users from the first. It waits on the nodes' state changes (a lease
// seen counts as hearing its node: leaseRenewed), not in a polling loop.
func (l *liveness) awaitPeers(d time.Duration) {
	l.awaitState(d, func() bool {
		for node, inc := range l.reg.freshLeases(3 * renewEvery) {
			if node != l.self && !l.alive(node, inc) {
				return false
			}
		}
		return true
	})
}

// release deletes this node's lease as it leaves, within ctx and one
// registry operation's bound. It waits for a renewal under way (which may
// change the lease's revision) and no renewal starts after the node began
// to leave, so a lease once released is not taken again.
func (l *liveness) release(ctx context.Context) error {
	select {
	case l.leaseOp <- struct{}{}:
		defer func() { <-l.leaseOp }()
	case <-ctx.Done():
		return fmt.Errorf("a renewal is still under way: %w", ctx.Err())
	}
	rev := l.leaseRev.Load()
	if rev == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	key := nodeKey(l.self)
	err := l.reg.nodes.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil && isExists(err) {
		if own, ok := l.ownLease(ctx); ok {
			err = l.reg.nodes.Delete(ctx, key, jetstream.LastRevision(own))
		}
	}
	if err == nil {
		l.leaseRev.Store(0) // released: nothing to release again
	}
	return err
}

// errLeaving refuses a lease renewal once the node leaves.
var errLeaving = errors.New("the node is leaving")

// renewLease renews the node's lease (val is its value), unless the node
// is leaving. An update refused for its revision finds out why: a renewal
// whose answer was lost (the engine electing a leader, the request timed
// out) was stored all the same, and the lease is still this
// incarnation's, at a later revision; or the lease expired and is taken
// afresh.
func (l *liveness) renewLease(val []byte) error {
	reg := l.reg
	l.leaseOp <- struct{}{}
	defer func() { <-l.leaseOp }()
	if l.h.leaving.Load() { // leave began while the release held the token
		return errLeaving
	}
	sent := time.Now()
	ctx, cancel := reg.kvCtx()
	defer cancel()
	key := nodeKey(l.self)
	rev, err := reg.nodes.Update(ctx, key, val, l.leaseRev.Load())
	if err != nil && isExists(err) {
		if own, ok := l.ownLease(ctx); ok {
			l.log.Info("an earlier lease renewal was stored although its answer was lost", "revision", own)
			rev, err = reg.nodes.Update(ctx, key, val, own)
		} else {
			// Expired (or taken over): take it afresh if nobody holds it.
			rev, err = reg.nodes.Create(ctx, key, val)
			if err == nil {
				l.log.Warn("the node's lease had expired; took it again")
			}
		}
	}
	if err != nil {
		return err
	}
	// Before the token goes back: a release must see this revision.
	l.leaseRev.Store(rev)
	l.renewedAt.Store(sent.UnixNano())
	return nil
}

// ownLease returns the revision of the node's lease if the lease is this
// incarnation's.
func (l *liveness) ownLease(ctx context.Context) (uint64, bool) {
	e, err := l.reg.nodes.Get(ctx, nodeKey(l.self))
	if err != nil {
		return 0, false
	}
	le, err := parseLease(e.Value())
	if err != nil || le.inc != l.inc {
		return 0, false
	}
	return e.Revision(), true
}

// run starts the liveness goroutines, owned by the node: heartbeats and
// silence checks, lease renewal, fencing, sweeps of dead records.
func (l *liveness) run() {
	l.spawn(l.beat)
	l.spawn(l.renew)
	l.spawn(l.fenceWhenUnrenewed)
	l.spawn(l.sweeper)
}

// beat sends heartbeats and marks the nodes that went silent.
func (l *liveness) beat() {
	last := time.Time{}
	l.every(heartbeatEvery/2, nil, func(now time.Time) {
		if now.Sub(last) >= heartbeatEvery {
			l.announce(stateUp)
			last = now
		}
		l.checkSilence(now)
	})
}

// every calls f with the time every d, and at once for each token on
// wake (nil: none), until the node stops: the loop of each of the
// liveness goroutines.
func (l *liveness) every(d time.Duration, wake <-chan struct{}, f func(now time.Time)) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			f(now)
		case <-wake:
			f(time.Now())
		}
	}
}

func (l *liveness) checkSilence(now time.Time) {
	var silenced []string
	l.mu.Lock()
	for node, st := range l.nodes {
		if !st.silent && now.Sub(st.seen) > heartbeatTimeout {
			st.silent = true
			silenced = append(silenced, node)
		}
	}
	l.mu.Unlock()
	for _, node := range silenced {
		if node == l.self {
			continue
		}
		l.h.changed()
		l.m.silences.Inc()
		l.log.Warn("node silent: its users are hidden until it is heard again or its lease expires", "peer", node, "for", heartbeatTimeout)
	}
}

// fenceWhenUnrenewed fences the node once no renewal of its lease has
// succeeded for fenceAfter. It is a goroutine of its own, doing no I/O, so
// that a renewal stuck on a cut connection (up to kvTimeout) does not
// delay the fence.
func (l *liveness) fenceWhenUnrenewed() {
	unrenewed := func() error {
		if since := time.Since(time.Unix(0, l.renewedAt.Load())); since > fenceAfter {
			return fmt.Errorf("%w: lease not renewed for %v", errFenced, since.Round(time.Second))
		}
		return nil
	}
	l.every(renewEvery/4, nil, func(time.Time) { l.h.fence(unrenewed) })
}

// renew renews the lease every renewEvery; a renewal that succeeds lets
// a fenced node admit again.
func (l *liveness) renew() {
	val := leaseEntry{inc: l.inc, addr: l.addr}.value()
	var lastTry time.Time
	l.every(renewEvery/4, nil, func(now time.Time) {
		if now.Sub(lastTry) < renewEvery {
			return
		}
		lastTry = now
		if l.h.leaving.Load() {
			return // the lease is being released: never renewed again
		}
		if err := l.renewLease(val); err != nil {
			l.log.Debug("lease renewal failed", "err", err)
			return
		}
		if l.h.fenced.Load() {
			l.awaitSilent(rejoinWait)
		}
		l.h.unfence()
	})
}

// sweepSoon asks for a sweep of dead records.
func (l *liveness) sweepSoon() {
	select {
	case l.sweep <- struct{}{}:
	default:
	}
}

// sweeper removes the records of users and places whose node holds no
// lease (dead, gone, or an earlier incarnation), and this incarnation's
// own records that no session of it holds, on request and every few
// seconds. Records younger than a few seconds are left alone, since their
// node's lease may simply not have reached this node's cache yet.
func (l *liveness) sweeper() {
	l.every(2*time.Second, l.sweep, func(time.Time) { l.sweepOnce() })
}

// minRecordAge is how old a record must be before a sweep may remove it.
const minRecordAge = 5 * time.Second

func (l *liveness) sweepOnce() {
	reg := l.reg
	// The sessions this node holds or is joining: its own records that
	// belong to none of them were left by a join whose answers were lost
	// (the engine slow or electing a leader) or by a failed delete.
	users := l.h.spareResumable(reg.orphans(l.self, l.inc, l.h.sessions(), minRecordAge))
	var stale []pendingDelete
	// Records of a bucket since created again (revision 0, see guard)
	// are not in the bucket: nothing to delete, only the cache to mend.
	users = slices.DeleteFunc(users, func(p pendingDelete) bool {
		if p.rev == 0 {
			stale = append(stale, p)
		}
		return p.rev == 0
	})
	if len(stale) > 0 {
		reg.dropStale(stale)
	}
	if len(users) > 0 {
		l.quiet.Info("removing records that no live session holds", "records", len(users))
	}
	for _, p := range users {
		l.del.add(p.key, p.rev)
	}
}
