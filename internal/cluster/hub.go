package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gochat/chat/internal/server"
)

// Hub is the cluster's user registry: a server.Hub whose cap and names
// are cluster-wide. Local users are kept by a server.LocalHub; remote
// users are found in the registry's cache and reached through their node.
type Hub struct {
	// Set at construction, read-only: this group and the next.
	nodeInfo
	js                 jetstream.JetStream
	namesCfg, nodesCfg jetstream.KeyValueConfig // the registry's buckets, for guard to make again

	reg   *registry
	local *server.LocalHub
	relay *relay
	del   *deleter
	live  *liveness
	w     *writer // the node's writes to the names bucket, pipelined
	moves *moves  // nodes gone, for the sessions they held (resume.go)

	commit commits // counts of the client's frames the other nodes know of (commit.go)

	waiting atomic.Int64 // joins queued or under way (bounded by maxJoinQueue)

	fenced  atomic.Bool // the node lost its lease: no joins, no users
	leaving atomic.Bool // the node is leaving: fenced for good

	mu       sync.Mutex
	locals   map[string]localUser // this node's joined users; guarded by mu
	joining  map[uint64]bool      // tokens of the joins under way; guarded by mu
	released map[uint64]time.Time // tokens of sessions released to another node whose records have not moved yet, and when (release.go); guarded by mu

	version atomic.Uint64             // bumped when the list may have changed
	list    atomic.Pointer[listCache] // the visible users, sorted

	presence   atomic.Pointer[func(name string, joined bool)] // set by OnPresence
	presenceCh chan presenceEvent                             // joins and leaves of other nodes' users, for presence
}

type presenceEvent struct {
	name   string
	joined bool
}

// localUser is a user joined on this node.
type localUser struct {
	name    string
	peer    server.Peer
	token   uint64
	slot    int
	userRev uint64
	slotRev uint64
}

type listCache struct {
	version uint64
	names   []string
}

var _ server.Hub = (*Hub)(nil)

func newHub(n nodeInfo, cfg Config, js jetstream.JetStream, reg *registry) (*Hub, error) {
	names := namesConfig(cfg)
	w, err := newWriter(n, names.Bucket)
	if err != nil {
		return nil, err
	}
	h := &Hub{nodeInfo: n, js: js, namesCfg: names, nodesCfg: nodesConfig(cfg), reg: reg, w: w, moves: newMoves(), local: server.NewLocalHub(), locals: make(map[string]localUser), joining: make(map[uint64]bool), presenceCh: make(chan presenceEvent, 4096)}
	h.commit.kick = make(chan struct{}, 1)
	h.del = newDeleter(n, w, reg)
	h.live = newLiveness(h, cfg.ChatAddr)
	h.relay = newRelay(h, cfg.PaceBacklog, cfg.StallTimeout)
	reg.onUser = func(name string, u userEntry, present bool) {
		h.changed()
		h.relay.userChanged(name, u, present)
		h.relay.dropRetained(name, u.token, present)
		if u.node != h.self && h.presence.Load() != nil {
			select {
			case h.presenceCh <- presenceEvent{name, present}:
			default: // a flood of joins: presence notices are paused then anyway
			}
		}
	}
	reg.onNode = func(node string, l leaseEntry, gone bool) {
		if gone {
			h.moves.nodeGone(node, l.inc, h.live.lastSeen(node))
			h.live.forget(node)
		} else {
			h.live.leaseRenewed(node, l)
		}
		h.changed()
		h.live.sweepSoon()
	}
	reg.onRenew = h.live.leaseRenewed
	reg.onMove = h.userMoved
	return h, nil
}

// start loads the registry, takes the node's lease and starts the node's
// goroutines.
func (h *Hub) start(ctx context.Context) error {
	if err := h.relay.subscribe(); err != nil {
		return err
	}
	if err := h.live.start(ctx); err != nil {
		return err
	}
	if err := h.reg.watch(ctx); err != nil {
		return err
	}
	if err := h.live.acquire(ctx); err != nil {
		return err
	}
	h.w.start()
	h.del.start()
	h.live.run()
	// The buckets are read here, not by the guard: tests wrap them in
	// fakes while the node runs (TestJoinLosesPlaceRace), and the guard
	// reading the field every tick raced with that (-race, once in three).
	names, nodes := h.reg.names, h.reg.nodes
	h.spawn(func() { h.guard(names, nodes) })
	h.live.awaitPeers(2 * heartbeatEvery)
	h.live.sweepSoon() // entries of earlier incarnations and dead nodes
	return nil
}

// OnPresence implements server.PresenceSource: f is called, from one
// goroutine, for every join and leave of a user on another node.
func (h *Hub) OnPresence(f func(name string, joined bool)) {
	h.presence.Store(&f)
	h.spawn(func() {
		for {
			select {
			case e := <-h.presenceCh:
				f(e.name, e.joined)
			case <-h.stop:
				return
			}
		}
	})
}

// changed notes that the list of users may have changed.
func (h *Hub) changed() { h.version.Add(1) }

// maxJoinQueue bounds the joins a node has queued or under way: beyond
// it a join is answered as undecided at once (try again) rather than
// queued. It is more connections than one process holds on the machines
// of docs/PERFORMANCE.md (20,000 descriptors), so a storm that fits a node
// is queued whole.
const maxJoinQueue = 1 << 15

// Join implements server.Hub.
func (h *Hub) Join(p server.Peer, maxUsers int) error {
	return h.JoinQueued(p, maxUsers, func() {})
}

// JoinQueued implements server.QueuedJoiner: it takes the name, then a
// free place under the cap, both in the registry, so that neither a name
// nor the cap can ever be taken twice in the cluster. Full is decided
// before taken: a name that is taken while the cluster is full is refused
// as full. The name's write joins the node's queue of registry writes in
// the order the joins came, and queued is called then: the joins of a
// storm are decided in that order, at the rate the registry takes them,
// and none is given up for waiting behind the others (issue 21).
func (h *Hub) JoinQueued(p server.Peer, maxUsers int, queued func()) error {
	if h.fenced.Load() {
		return fmt.Errorf("%w: this node is cut off from the cluster", server.ErrUnavailable)
	}
	maxUsers = min(maxUsers, h.reg.maxClients)
	if h.reg.slotsTaken() >= maxUsers {
		return server.ErrServerFull
	}
	if h.waiting.Add(1) > maxJoinQueue {
		h.waiting.Add(-1)
		return fmt.Errorf("%w: %d joins queued at this node", server.ErrUnavailable, maxJoinQueue)
	}
	defer h.waiting.Add(-1)
	start := time.Now()
	defer func() { h.m.kvLatency.Observe(time.Since(start).Seconds()) }()
	name := p.Name()
	u := userEntry{node: h.self, inc: h.inc, token: randomUint64(), created: time.Now().UnixNano(), resume: resumeOf(p)}
	h.mu.Lock()
	h.joining[u.token] = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.joining, u.token)
		h.mu.Unlock()
	}()
	var err error
	u.rev, err = h.takeName(name, u.token, u.value(), queued)
	if err != nil {
		if !isExists(err) {
			if !errors.Is(err, server.ErrUnavailable) {
				err = fmt.Errorf("%w: %v", server.ErrUnavailable, err)
			}
			return err
		}
		if h.reg.slotsTaken() >= maxUsers {
			return server.ErrServerFull
		}
		return server.ErrNameTaken
	}
	slot, slotRev, err := h.takeSlot(maxUsers, u.token)
	if err != nil {
		h.del.add(userKey(name), u.rev)
		return err
	}
	h.mu.Lock()
	if h.fenced.Load() {
		h.mu.Unlock()
		h.del.add(userKey(name), u.rev)
		h.del.add(slotKey(slot), slotRev)
		return fmt.Errorf("%w: this node is cut off from the cluster", server.ErrUnavailable)
	}
	if err := h.local.Join(p, math.MaxInt); err != nil {
		h.mu.Unlock()
		h.del.add(userKey(name), u.rev)
		h.del.add(slotKey(slot), slotRev)
		return err
	}
	h.locals[name] = localUser{name: name, peer: p, token: u.token, slot: slot, userRev: u.rev, slotRev: slotRev}
	h.mu.Unlock()
	h.reg.recordJoin(name, u, slot, slotEntry{node: u.node, inc: u.inc, token: u.token, rev: slotRev, created: u.created})
	h.changed()
	return nil
}

// write queues one write of a join and returns its result, calling
// queued (if not nil) once it is queued. A write the registry did not
// answer is tried again, unless the registry has answered nothing for
// joinPatience or the node is cut off: then the join cannot be decided,
// and the error wraps server.ErrUnavailable. retried reports whether an
// attempt went unanswered: it may have been stored all the same.
func (h *Hub) write(op writeOp, queued func()) (rev uint64, retried bool, err error) {
	rev, err = h.writeOnce(op, queued, &retried)
	return rev, retried, err
}

func (h *Hub) writeOnce(op writeOp, queued func(), retried *bool) (uint64, error) {
	backoff := 50 * time.Millisecond
	for {
		op.done = nil
		h.w.submit(&op)
		if queued != nil {
			queued()
			queued = nil
		}
		r := h.w.wait(&op)
		if r.err == nil || isExists(r.err) {
			return r.rev, r.err
		}
		if h.fenced.Load() || h.ctx.Err() != nil || errors.Is(r.err, errStalled) || h.w.stalled() {
			return 0, fmt.Errorf("%w: %v", server.ErrUnavailable, r.err)
		}
		*retried = true
		h.log.Debug("registry write not answered; trying again", "key", op.key, "err", r.err)
		select {
		case <-time.After(backoff):
		case <-h.stop:
			return 0, fmt.Errorf("%w: %v", server.ErrUnavailable, r.err)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// takeName creates the record of name for the join of token (value
// val): a create, or an update of the delete marker its key ends in, as
// the cache knows it. A refused write is settled from the cache when it
// can be (the name is another's, or was this join's own from an attempt
// whose answer was lost, or its key has a newer marker by now), else by
// asking the engine (create). An error for which isExists holds means the
// name is taken.
func (h *Hub) takeName(name string, token uint64, val []byte, queued func()) (uint64, error) {
	key := userKey(name)
	expect := h.reg.nameExpect(name)
	for range 4 {
		rev, retried, err := h.write(writeOp{key: key, val: val, expect: expect}, queued)
		queued = nil
		if !isExists(err) {
			return rev, err
		}
		if retried { // an unanswered attempt may have stored it: read it
			return h.create(key, val)
		}
		own, rev, taken, retry, again := h.reg.nameRefused(name, token, expect)
		switch {
		case own:
			return rev, nil
		case taken:
			return 0, err
		case !retry:
			return h.create(key, val)
		}
		expect = again
	}
	return h.create(key, val)
}

// takeSlot takes a free place under the cap for the join of token: the
// cache suggests one (held for this join meanwhile), and the write
// decides; a place another node took meanwhile is tried again elsewhere.
func (h *Hub) takeSlot(maxUsers int, token uint64) (int, uint64, error) {
	val := slotEntry{node: h.self, inc: h.inc, token: token}.value()
	for range 64 {
		slot, expect := h.reg.reserveSlot(token)
		if slot < 0 {
			return 0, 0, server.ErrServerFull
		}
		for range 4 {
			rev, retried, err := h.write(writeOp{key: slotKey(slot), val: val, expect: expect}, nil)
			if err == nil {
				return slot, rev, nil
			}
			if !isExists(err) {
				h.reg.unreserve(slot, token)
				return 0, 0, err
			}
			if retried {
				// An unanswered attempt may have stored it: read it,
				// or the place would stay this session's unseen.
				h.reg.unreserve(slot, token)
				if slot, rev, err := h.createSlot(slot, val); !errors.Is(err, errPlaceTaken) {
					return slot, rev, err
				}
				break
			}
			own, rev, retry, again := h.reg.slotRefused(slot, token, expect)
			if own {
				return slot, rev, nil
			}
			if !retry {
				break
			}
			expect = again
		}
		h.reg.unreserve(slot, token)
	}
	return 0, 0, server.ErrServerFull
}

// claimSlot takes a free place under the cap with synchronous writes (a
// rebuilt bucket's refill): the cache suggests one, and Create decides; a
// place another node took meanwhile is tried again elsewhere.
func (h *Hub) claimSlot(maxUsers int, token uint64) (int, uint64, error) {
	val := slotEntry{node: h.self, inc: h.inc, token: token}.value()
	for range 64 {
		slot := h.reg.freeSlot()
		if slot < 0 {
			return 0, 0, server.ErrServerFull
		}
		if slot, rev, err := h.createSlot(slot, val); !errors.Is(err, errPlaceTaken) {
			return slot, rev, err
		}
	}
	return 0, 0, server.ErrServerFull
}

// errPlaceTaken says that another holds the place a join tried to take;
// the join tries another.
var errPlaceTaken = errors.New("place taken")

// createSlot creates the record of place slot (value val) with create.
// A place another holds is noted in the cache until the watch brings the
// other's record, and the error is errPlaceTaken.
func (h *Hub) createSlot(slot int, val []byte) (int, uint64, error) {
	rev, err := h.create(slotKey(slot), val)
	if err == nil {
		return slot, rev, nil
	}
	if !isExists(err) {
		return 0, 0, fmt.Errorf("%w: %v", server.ErrUnavailable, err)
	}
	h.reg.notePlaceTaken(slot, rev)
	return 0, 0, errPlaceTaken
}

// create is Create for a join, made safe to retry: an attempt whose answer
// was lost (the engine slow or electing a leader) may have stored the
// record, and a later attempt then finds the key taken. The value carries
// the join's random token, so a key that holds exactly this value is this
// join's own. A key that is another's is an error for which isExists
// holds, with the revision of the other's record (0 if unknown).
func (h *Hub) create(key string, val []byte) (uint64, error) {
	var rev uint64
	err := h.retry(func(ctx context.Context) (err error) {
		rev, err = h.reg.names.Create(ctx, key, val)
		if err == nil || !isExists(err) {
			return err
		}
		e, gerr := h.reg.names.Get(ctx, key)
		switch {
		case gerr == nil && bytes.Equal(e.Value(), val):
			rev = e.Revision()
			return nil
		case gerr == nil:
			rev = e.Revision()
			return err // another's
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			return errors.New("the key was removed meanwhile") // try again
		}
		return gerr // undecided: try again
	})
	return rev, err
}

// joinPatience is how long a join keeps trying while the registry does not
// answer: longer than a JetStream leader election (4-9 s), so that losing
// a NATS server or a node only delays joins.
// (A variable, as kvTimeout.)
var joinPatience = 12 * time.Second

// retry runs op until it succeeds or fails for good (the key exists, or
// is gone), trying again for joinPatience while the registry does not
// answer.
func (h *Hub) retry(op func(ctx context.Context) error) error {
	start := time.Now()
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := h.reg.kvCtx()
		err := op(ctx)
		cancel()
		if err == nil || isExists(err) || errors.Is(err, jetstream.ErrKeyNotFound) || h.ctx.Err() != nil || time.Since(start)+backoff > joinPatience {
			return err
		}
		h.log.Debug("registry not answering; trying again", "err", err)
		select {
		case <-time.After(backoff):
		case <-h.stop:
			return err
		}
		backoff = min(2*backoff, time.Second)
	}
}

// dropLocal removes the local user of name if is says it is the one
// meant, and returns it.
func (h *Hub) dropLocal(name string, is func(localUser) bool) (localUser, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	lu, ok := h.locals[name]
	if !ok || !is(lu) {
		return localUser{}, false
	}
	delete(h.locals, name)
	return lu, true
}

// Leave implements server.Hub.
func (h *Hub) Leave(p server.Peer) {
	name := p.Name()
	lu, ok := h.dropLocal(name, func(lu localUser) bool { return lu.peer == p })
	if !ok {
		return
	}
	h.local.Leave(p)
	h.reg.recordLeave(name, lu.token, lu.slot, lu.slotRev)
	h.changed()
	h.del.add(userKey(name), lu.userRev)
	if lu.slot >= 0 { // -1: a session moved here whose place is being moved (resume.go)
		h.del.add(slotKey(lu.slot), lu.slotRev)
	}
	h.relay.localLeft(p)
}

// Lookup implements server.Hub.
func (h *Hub) Lookup(name string) server.Peer {
	if p := h.local.Lookup(name); p != nil {
		return p
	}
	u, ok := h.reg.user(name)
	if ok && u.node == h.self && h.relay.releasedTo(creditKey{name, u.token}) != "" {
		return h.relay.peer(name, u) // released to another node, its record not yet moved (release.go)
	}
	if !ok || u.node == h.self || !h.live.alive(u.node, u.inc) && !h.awayElsewhere(u) {
		return nil
	}
	return h.relay.peer(name, u)
}

// Users implements server.Hub: every user of the cluster whose node is
// alive, sorted.
func (h *Hub) Users() []string {
	v := h.version.Load()
	if c := h.list.Load(); c != nil && c.version == v {
		return c.names
	}
	names := h.reg.snapshot(h.visible)
	h.list.Store(&listCache{version: v, names: names})
	return names
}

// visible reports whether a registry record stands for a user to list.
func (h *Hub) visible(u userEntry) bool {
	if u.node == h.self {
		return u.inc == h.inc && !h.fenced.Load()
	}
	return h.live.alive(u.node, u.inc) || h.awayElsewhere(u)
}

// Len implements server.Hub.
func (h *Hub) Len() int { return len(h.Users()) }

// localToken returns the session token of the local user name.
// localEntry is localToken for a name in bytes; it returns the name as
// the hub holds it, so that the caller need not copy it.
func (h *Hub) localEntry(name []byte) (string, server.Peer, uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	lu, ok := h.locals[string(name)]
	return lu.name, lu.peer, lu.token, ok
}

func (h *Hub) localToken(name string) (server.Peer, uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	lu, ok := h.locals[name]
	return lu.peer, lu.token, ok
}

// sessions returns the tokens of the sessions this node holds or is
// joining.
func (h *Hub) sessions() map[uint64]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	held := make(map[uint64]bool, len(h.locals)+len(h.joining))
	for _, lu := range h.locals {
		held[lu.token] = true
	}
	for t := range h.joining {
		held[t] = true
	}
	for t, at := range h.released {
		if time.Since(at) < releasedHold {
			held[t] = true
		} else {
			delete(h.released, t)
		}
	}
	return held
}

// fence stops admitting and cuts every local user off when why, asked
// under the hub's lock, gives a reason: the node has not renewed its lease
// for fenceAfter, so the cluster may soon give their names away. (Asked
// under the lock, why sees a renewal that succeeded a moment ago, so a
// node just admitting again is not fenced on a stale reading.)
func (h *Hub) fence(why func() error) {
	h.mu.Lock()
	err := why()
	if err == nil || h.fenced.Swap(true) {
		h.mu.Unlock()
		return
	}
	peers := make([]server.Peer, 0, len(h.locals))
	for _, lu := range h.locals {
		peers = append(peers, lu.peer)
	}
	h.mu.Unlock()
	h.changed()
	h.m.fences.Inc()
	h.log.Error("cut off from the cluster: no longer admitting; cutting local users off", "users", len(peers), "err", err)
	for _, p := range peers {
		if e, ok := p.(server.Evictable); ok {
			e.Evict(err)
		}
	}
}

// unfence admits again once the lease is renewed.
func (h *Hub) unfence() {
	if h.leaving.Load() || !h.fenced.CompareAndSwap(true, false) {
		return
	}
	if h.leaving.Load() { // leave began meanwhile
		h.fenced.Store(true)
		return
	}
	h.changed()
	h.log.Warn("back in the cluster: admitting again")
}

// leave tells the cluster this node is going: the others hide its users
// at once; its records are removed, waiting at most recordsWait, then its
// lease, waiting at most leaseWait. It reports whether the registry
// answered the lease's removal: it does not when the engine has lost its
// majority, as when the last nodes of an embedded cluster stop, and then
// the node waits on it no further (the lease expires and the others'
// sweepers remove what is left).
func (h *Hub) leave() (answered bool) {
	h.leaving.Store(true)
	h.fenced.Store(true)
	h.live.announce(stateLeaving)
	h.mu.Lock()
	for name, lu := range h.locals {
		h.del.add(userKey(name), lu.userRev)
		if lu.slot >= 0 {
			h.del.add(slotKey(lu.slot), lu.slotRev)
		}
	}
	h.mu.Unlock()
	records, cancel := context.WithTimeout(context.Background(), recordsWait)
	defer cancel()
	h.del.drain(records)
	lease, cancel := context.WithTimeout(context.Background(), leaseWait)
	defer cancel()
	if err := h.live.release(lease); err != nil {
		h.log.Warn("could not remove the lease; the cluster drops it when it expires", "err", err)
		return false
	}
	return true
}

// stopAll stops the watches and subscriptions; the goroutines end with
// the node's stop channel. Stopping a watch deletes its consumer through
// the engine, a request that waits 5 s for an engine that does not answer;
// without deleteConsumers the watches are only closed with the node's
// connection, and the engine removes their consumers (ephemeral) a few
// seconds after that.
func (h *Hub) stopAll(deleteConsumers bool) {
	if deleteConsumers {
		h.reg.watchMu.Lock()
		watches := []jetstream.KeyWatcher{h.reg.namesWatch, h.reg.leasesWatch}
		h.reg.watchMu.Unlock()
		for _, w := range watches {
			if w != nil {
				w.Stop()
			}
		}
	}
	h.relay.unsubscribe()
	h.live.unsubscribe()
}

// errFenced is the cause given to users cut off by fencing.
var errFenced = errors.New("node cut off from the cluster")
