package cluster

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gochat/chat/internal/server"
)

// guardEvery is how often a node checks that the registry's buckets are
// the ones it watches.
const guardEvery = 2 * time.Second

// errNameLost cuts off a user whose name another session took while the
// registry was being rebuilt.
var errNameLost = errors.New("the registry was rebuilt and the name is another session's now")

// guard watches over the registry's buckets (issue 20: deleting the names
// bucket cut every user off within 12 s, and no join succeeded for more
// than 30 s). A bucket that is gone is created again; a bucket created
// again (by this node or another) is watched afresh, and this node puts
// its own records back: its lease (renewLease takes it afresh when its
// revision is gone), the client cap, and its users' names and places. The
// cache keeps the records of the old bucket, marked stale (revision 0), so
// that lists do not flicker while the other nodes put theirs back; stale
// records that nobody puts back go with the sweeper (records) or after
// leaseTTL (leases).
// names and nodes are the registry's buckets, read when the node started.
func (h *Hub) guard(names, nodes jetstream.KeyValue) {
	created := map[string]time.Time{}
	tick := time.NewTicker(guardEvery)
	defer tick.Stop()
	for {
		if !h.leaving.Load() {
			h.guardBucket(created, names, h.namesCfg, func() {
				h.reg.rewatch(true)
				h.refill()
			})
			h.guardBucket(created, nodes, h.nodesCfg, func() { h.reg.rewatch(false) })
			h.reg.expireStaleLeases()
		}
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
	}
}

// guardBucket checks the bucket of cfg: it creates it again if it is gone,
// and calls rebuilt if the bucket was created again since the last check.
func (h *Hub) guardBucket(created map[string]time.Time, kv jetstream.KeyValue, cfg jetstream.KeyValueConfig, rebuilt func()) {
	ctx, cancel := h.reg.kvCtx()
	defer cancel()
	st, err := kv.Status(ctx)
	if isStreamGone(err) {
		h.log.Warn("a registry bucket is gone: creating it again", "bucket", cfg.Bucket)
		if _, err := openBucket(ctx, h.js, cfg); err != nil {
			h.log.Warn("could not create the registry bucket again", "bucket", cfg.Bucket, "err", err)
			return
		}
		st, err = kv.Status(ctx)
	}
	if err != nil {
		return // the engine does not answer: next time
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return
	}
	now := bs.StreamInfo().Created
	before, known := created[cfg.Bucket]
	created[cfg.Bucket] = now
	if known && !now.Equal(before) {
		h.log.Warn("a registry bucket was created again: putting this node's records back", "bucket", cfg.Bucket)
		rebuilt()
	}
}

// isStreamGone reports whether err says that a bucket's stream does not
// exist.
func isStreamGone(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound
}

// rewatch replaces the watch of the names bucket (names) or the nodes
// bucket after the bucket was created again: the old watch's consumer
// followed the old stream's sequence, which the new one starts again.
func (r *registry) rewatch(names bool) {
	r.watchMu.Lock()
	old, done := r.leasesWatch, r.leasesDone
	if names {
		old, done = r.namesWatch, r.namesDone
	}
	r.watchMu.Unlock()
	if old != nil {
		old.Stop() // its updates close: its goroutine ends
	}
	select {
	case <-done:
	case <-r.stop:
		return
	}
	r.mu.Lock()
	if names {
		for name, u := range r.users {
			u.rev = 0
			r.users[name] = u
		}
		for i, s := range r.slots {
			if s.placeholder() { // awaits a record of the old bucket
				r.freeLocked(i)
				continue
			}
			s.rev = 0
			r.slots[i] = s
		}
		r.namesRev = 0
		clear(r.userTombs) // the revisions of the old bucket
		clear(r.slotTombs)
	} else {
		for node, l := range r.leases {
			l.rev = 0
			r.leases[node] = l
		}
	}
	r.mu.Unlock()
	for {
		var w jetstream.KeyWatcher
		var err error
		if names {
			w, err = r.names.WatchAll(r.ctx)
		} else {
			w, err = r.nodes.WatchAll(r.ctx)
		}
		if err == nil {
			apply := r.applyLease
			if names {
				apply = r.applyName
			}
			r.watchMu.Lock()
			done := r.spawnFollow(w, make(chan struct{}), apply)
			if names {
				r.namesWatch, r.namesDone = w, done
			} else {
				r.leasesWatch, r.leasesDone = w, done
			}
			r.watchMu.Unlock()
			return
		}
		r.quiet.Warn("cannot watch the registry bucket again; retrying", "err", err)
		select {
		case <-r.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// expireStaleLeases drops the leases of a bucket that was created again
// which their node has not put back for leaseTTL: the node is gone.
func (r *registry) expireStaleLeases() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for node, l := range r.leases {
		if l.rev == 0 && time.Since(l.created) > leaseTTL {
			delete(r.leases, node)
			if r.onNode != nil {
				r.onNode(node, l, true)
			}
		}
	}
}

// dropStale removes from the cache the records of a rebuilt bucket that
// nobody put back (their keys are not in the bucket: nothing to delete).
func (r *registry) dropStale(keys []pendingDelete) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range keys {
		if name, ok := userOf(p.key); ok {
			if u, ok := r.users[name]; ok && u.rev == 0 {
				delete(r.users, name)
				r.notifyUser(name, u, false)
			}
		} else if i, ok := slotOf(p.key); ok {
			if s, ok := r.slots[i]; ok && s.rev == 0 {
				r.freeLocked(i)
			}
		}
	}
}

// refill puts this node's records back into a names bucket that was
// created again: the client cap, and each local user's name and place,
// with the session's token as before. A name that another session took
// meanwhile stays that session's, and the local user is cut off; a place
// taken meanwhile is exchanged for a free one (or the user cut off, the
// cluster being full).
func (h *Hub) refill() {
	ctx, cancel := h.reg.kvCtx()
	h.reg.names.Create(ctx, cfgKey, []byte("max-clients="+strconv.Itoa(h.reg.maxClients)))
	cancel()
	h.mu.Lock()
	locals := make([]localUser, 0, len(h.locals))
	for _, lu := range h.locals {
		locals = append(locals, lu)
	}
	h.mu.Unlock()
	cut := func(lu localUser, err error) {
		h.log.Warn("cutting a user off: the registry was rebuilt", "user", lu.name, "err", err)
		if e, ok := lu.peer.(server.Evictable); ok {
			e.Evict(err)
		}
	}
	var put int
	for _, lu := range locals {
		u := userEntry{node: h.self, inc: h.inc, token: lu.token, resume: resumeOf(lu.peer)}
		val := sessionValue(h.inc, lu.token, h.self)
		userRev, err := h.create(userKey(lu.name), u.value())
		if err != nil {
			if isExists(err) {
				cut(lu, errNameLost)
			} else {
				cut(lu, fmt.Errorf("%w: %v", server.ErrUnavailable, err))
			}
			continue
		}
		slot := lu.slot
		slotRev, err := uint64(0), errNoPlace
		if slot >= 0 {
			slotRev, err = h.create(slotKey(slot), val)
		}
		if isExists(err) || errors.Is(err, errNoPlace) {
			slot, slotRev, err = h.claimSlot(h.reg.maxClients, lu.token)
		}
		if err != nil {
			h.del.add(userKey(lu.name), userRev)
			cut(lu, err)
			continue
		}
		if slot != lu.slot && lu.slot >= 0 { // its old place, stale in the cache, is nobody's
			h.reg.dropStale([]pendingDelete{{slotKey(lu.slot), 0}})
		}
		h.mu.Lock()
		cur, ok := h.locals[lu.name]
		if ok && cur.token == lu.token {
			cur.userRev, cur.slot, cur.slotRev = userRev, slot, slotRev
			h.locals[lu.name] = cur
		}
		h.mu.Unlock()
		if !ok || cur.token != lu.token { // left meanwhile
			h.del.add(userKey(lu.name), userRev)
			h.del.add(slotKey(slot), slotRev)
			continue
		}
		u.rev, u.created = userRev, time.Now().UnixNano()
		h.reg.recordJoin(lu.name, u, slot, slotEntry{node: u.node, inc: u.inc, token: u.token, rev: slotRev, created: u.created})
		put++
	}
	h.changed()
	h.log.Info("put this node's records back into the registry", "users", put, "of", len(locals))
}
